"""The shipped monitoring (issue #20): the alert rules and their unit tests under promtool, the metric names the
rules and the Grafana dashboard use, and a real Prometheus server (Debian's package) scraping a running
`ragstore serve` with a key of the metrics role, through the shipped scrape configuration.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ragstore.api.app import create_app
from ragstore.config import Settings
from ragstore.service import RagStore
from servers import free_port
from test_processes import server_process

from conftest import ROOT, service_missing

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "ragstore.json"
DIM = 8


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        service_missing(f"{name} is not installed (Debian's prometheus package)")
    assert found is not None
    return found


def test_the_alert_rules_load_and_pass_their_unit_tests() -> None:
    checked = subprocess.run(
        [tool("promtool"), "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    tested = subprocess.run(
        [tool("promtool"), "test", "rules", "alerts_test.yml"],
        capture_output=True,
        text=True,
        cwd=PROMETHEUS_DIR,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert has a unit test that makes it fire.
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    fired = {c["alertname"] for t in tests for c in t["alert_rule_test"] if c["exp_alerts"]}
    assert fired == {r["alert"] for r in rules}


def served_names(text: str) -> set[str]:
    """Every series name the exposition can hold: a counter's `_total`, a histogram's `_bucket`, `_count`
    and `_sum`, whether or not a sample was counted yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names.update(family.name + s for s in suffixes)
    return names


def used_names() -> set[str]:
    """The metric names the alert rules and the dashboard query."""
    texts = [(PROMETHEUS_DIR / "alerts.yml").read_text()]
    texts += [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    return {name for text in texts for name in re.findall(r"\bragstore_[a-z_]+\b", text)}


def test_every_metric_the_rules_and_the_dashboard_use_is_served(store: RagStore) -> None:
    with TestClient(create_app(store=store)) as client:
        served = served_names(client.get("/metrics").text)
    used = used_names()
    assert len(used) >= 20
    assert not used - served, f"named in alerts.yml or the dashboard, not in GET /metrics: {sorted(used - served)}"
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 15


@contextmanager
def prometheus_server(config: dict[str, Any], tmp_path: Path) -> Iterator[httpx.Client]:
    """A Prometheus server of Debian's package on a free loopback port, with `config`."""
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=out,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if client.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not start: " + log.read_text()[-3000:]
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def query(prometheus: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answer = prometheus.get("/api/v1/query", params={"query": expr})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"]["result"])


def wait_for(prometheus: httpx.Client, expr: str, want: Callable[[float], bool], what: str) -> float:
    """Poll the query until its one value satisfies `want` (the scrape interval is one second)."""
    deadline = time.monotonic() + 60
    while True:
        found = query(prometheus, expr)
        if found and want(float(found[0]["value"][1])):
            return float(found[0]["value"][1])
        assert time.monotonic() < deadline, f"{what}: {expr} gave {found}"
        time.sleep(0.5)


@pytest.mark.timeout(240)
def test_a_real_prometheus_scrapes_ragstore_with_a_metrics_key(settings: Settings, tmp_path: Path) -> None:
    with RagStore.open(settings) as store:
        key = store.keys.create("prometheus", "metrics").key
        store.collections.create("kb", embedding_model="synthetic", dimension=DIM)
    key_file = tmp_path / "metrics.key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    env = {"RAGSTORE_AUTH": "required", "RAGSTORE_COMPANION_MODEL": "none"}
    worker_port = free_port()
    with (
        server_process(settings, tmp_path / "serve.log", **env) as api,
        worker_process(settings, tmp_path / "worker.log", worker_port, **env),
    ):
        assert api.get("/metrics").status_code == 401  # no key: Prometheus needs the configured one
        # The shipped configuration, pointed at this server and this key, scraping every second.
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(PROMETHEUS_DIR / "alerts.yml")]
        job = config["scrape_configs"][0]
        job["authorization"]["credentials_file"] = str(key_file)
        job["static_configs"] = [{"targets": [str(api.base_url.netloc.decode())]}]
        workers = config["scrape_configs"][1]  # found by DNS in the compose stack; here, the one worker
        assert workers["job_name"] == "ragstore-workers" and workers.pop("dns_sd_configs")[0]["port"] == 9101
        workers["authorization"]["credentials_file"] = str(key_file)
        workers["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
        with prometheus_server(config, tmp_path) as prometheus:
            wait_for(prometheus, 'up{job="ragstore"}', lambda v: v == 1, "the scrape succeeds")
            wait_for(prometheus, 'up{job="ragstore-workers"}', lambda v: v == 1, "the worker's scrape succeeds")
            wait_for(
                prometheus,
                'sum(ragstore_db_query_duration_seconds_count{job="ragstore-workers"})',
                lambda v: v > 0,
                "the worker's own SQL is counted",
            )
            built = query(prometheus, "ragstore_build_info")
            assert built[0]["metric"]["database"] == ("sqlite" if settings.database_url is None else "postgresql")
            vector = np.random.default_rng(5).normal(size=DIM).tolist()
            for _ in range(5):
                answer = api.post(
                    "/v1/collections/kb/search",
                    json={"vector": vector, "k": 1, "mode": "dense"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert answer.status_code == 403  # the metrics role reads /metrics only
            wait_for(
                prometheus,
                'sum(ragstore_http_request_duration_seconds_count{route="/v1/collections/{name}/search",status_class="4xx"})',
                lambda v: v >= 5,
                "the refused searches are counted",
            )
            rules = prometheus.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]
            assert len(rules) == 9 and all(r["health"] == "ok" for r in rules), rules
            # A fresh store has never been backed up: the backup alert's condition holds (it has no `for`).
            wait_for(prometheus, 'ALERTS{alertname="RagstoreBackupTooOld",alertstate="firing"}', lambda v: v == 1, "")


@contextmanager
def worker_process(settings: Settings, log: Path, port: int, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`ragstore worker --metrics-port PORT` on the same store as the server."""
    from test_workers import RAGSTORE, child_env

    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(RAGSTORE), "worker", "--no-jobs", "--metrics-port", str(port)],
            env={k: v for k, v in child_env(settings, **env).items() if k != "PROMETHEUS_MULTIPROC_DIR"},
            stderr=out,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(60)
