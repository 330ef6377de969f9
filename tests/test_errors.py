"""Every domain error is reported the same way by the HTTP API and the CLI, as its category says.

The test finds the errors itself (every module of ragstore imported, then every subclass of RagstoreError),
so an error class added anywhere later is checked without being listed here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import ragstore
from ragstore.api.errors import install_error_handlers
from ragstore.backup.errors import BackupError
from ragstore.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, domain_errors, exit_code_for
from ragstore.errors import (
    CATEGORIES,
    EXIT_CALLER_ERROR,
    ConfigError,
    RagstoreError,
    category_of,
)
from ragstore.errors import EXIT_FAILED as ERRORS_EXIT_FAILED

ROOT = Path(__file__).resolve().parents[1]
# Modules that only work inside another program (Alembic runs env.py with its own context).
NOT_IMPORTABLE_ALONE = {"ragstore.migrations.env"}
# The stated exception to "4xx <=> exit 2" (see ragstore/errors.py): the operator owns the configuration.
EXCEPTIONS = {ConfigError: (500, EXIT_CALLER_ERROR)}


def _all_error_classes() -> list[type[RagstoreError]]:
    for module in pkgutil.walk_packages(ragstore.__path__, "ragstore."):
        if module.name not in NOT_IMPORTABLE_ALONE:
            importlib.import_module(module.name)

    def walk(kind: type[RagstoreError]) -> Iterator[type[RagstoreError]]:
        for sub in kind.__subclasses__():
            yield sub
            yield from walk(sub)

    return sorted(set(walk(RagstoreError)), key=lambda k: f"{k.__module__}.{k.__qualname__}")


ERRORS = _all_error_classes()


def _name(kind: type[RagstoreError]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def test_the_walk_finds_the_errors_of_every_package() -> None:
    names = {k.__name__ for k in ERRORS}
    assert {"InvalidInput", "NotFound", "BackupDamaged", "KeyProblem", "NoSpace", "BackupFailed"} <= names


@pytest.mark.parametrize("kind", ERRORS, ids=_name)
def test_each_error_belongs_to_exactly_one_category(kind: type[RagstoreError]) -> None:
    category = category_of(kind)
    assert category is not None, f"{_name(kind)} subclasses no category of ragstore.errors"
    inherited = [c for c in kind.__mro__ if c in CATEGORIES]
    # A category may refine another (PayloadTooLarge < InvalidInput); two unrelated ones would be two answers.
    assert all(issubclass(category, c) for c in inherited), f"{_name(kind)} is in {inherited}"
    if kind not in CATEGORIES:
        # Only a category says what a status or an exit code is; a member inherits both.
        assert "http_status" not in vars(kind) and "exit_code" not in vars(kind), _name(kind)


@pytest.mark.parametrize("kind", ERRORS, ids=_name)
def test_the_api_and_the_cli_report_the_category(kind: type[RagstoreError]) -> None:
    category = category_of(kind)
    assert category is not None
    error = kind("something went wrong")

    api = FastAPI()
    install_error_handlers(api)

    @api.get("/fail")
    def fail() -> None:
        raise error

    with TestClient(api) as client:
        response = client.get("/fail")
    assert response.status_code == category.http_status
    assert response.json()["error"] == {"code": kind.code, "message": "something went wrong"}

    cli = typer.Typer()

    @cli.command()
    def command() -> None:
        with domain_errors():
            raise error

    result = CliRunner().invoke(cli, [])
    assert result.exit_code == exit_code_for(error) == category.exit_code
    assert "something went wrong" in result.output


@pytest.mark.parametrize("category", CATEGORIES, ids=lambda c: c.__name__)
def test_categories_follow_one_rule(category: type[RagstoreError]) -> None:
    """4xx: the caller can fix it (exit 2); 5xx: ragstore or its environment failed (exit 1)."""
    if category in EXCEPTIONS:
        assert (category.http_status, category.exit_code) == EXCEPTIONS[category]
        return
    assert 400 <= category.http_status < 600
    expected = EXIT_CALLER_ERROR if category.http_status < 500 else ERRORS_EXIT_FAILED
    assert category.exit_code == expected
    for parent in category.__mro__[1:]:
        if parent in CATEGORIES:  # a refinement stays on its parent's side of the rule
            assert parent.exit_code == category.exit_code


def test_the_cli_exit_codes_are_the_ones_errors_name() -> None:
    assert (EXIT_FAILED, EXIT_BAD_INPUT) == (ERRORS_EXIT_FAILED, EXIT_CALLER_ERROR)


def test_the_backup_family_is_never_raised_bare() -> None:
    with pytest.raises(TypeError, match="family"):
        BackupError("no category")
    for path in (ROOT / "src" / "ragstore").rglob("*.py"):
        assert "raise BackupError(" not in path.read_text(encoding="utf-8"), path


def test_the_architecture_doc_has_the_table() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\d{3}) \| (\d) \|", section, flags=re.M)
    assert {(n, int(s), int(e)) for n, s, e in rows} == {(c.__name__, c.http_status, c.exit_code) for c in CATEGORIES}
