"""The production stack's files: the compose file against the Compose specification, the env example
against the settings ragstore reads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ragstore.config import Settings

from conftest import ROOT

DEPLOY = ROOT / "deploy"
# Variables the compose file itself consumes (secrets of the other services, the worker count).
COMPOSE_ONLY = {
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "GRAFANA_ADMIN_PASSWORD",
    "PROMETHEUS_PORT",
    "GRAFANA_PORT",
}


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    check = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "docker-compose.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_env_example_names_only_known_settings() -> None:
    known = {
        str(field.validation_alias.choices[0])  # type: ignore[union-attr]
        for field in Settings.model_fields.values()
    }
    lines = (DEPLOY / ".env.production.example").read_text().splitlines()
    names = {m.group(1) for line in lines if (m := re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line))}
    assert "DATABASE_POOL_SIZE" in names and "OPENAI_API_KEY" in names
    unknown = names - known - COMPOSE_ONLY
    assert not unknown, f"deploy/.env.production.example names settings ragstore does not read: {sorted(unknown)}"
