"""Schemathesis against the app's own OpenAPI document, on a real `ragstore serve` over a throwaway store.

Every operation is fuzzed from its documented schema (valid and invalid inputs), then the
stateful phase chains operations through the links schemathesis infers from the document (create a
collection -> add documents -> list, get, search, feedback -> delete). Each answer must not be a 5xx, must
have a documented status and content type, and must match the documented body. The run is deterministic
(derandomized, fixed seed) and the module checks at its end that at least MIN_CASES requests were sent.

Left out on purpose: `POST /admin/backup/restore` writes wherever `to` points (issue #15, item 1); it joins
the fuzzed operations once restores are confined to the data directory.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hostile.live import LiveServer, start_server, stop_server
from ragstore.api.app import create_app

pytestmark = pytest.mark.slow

SEED = 15  # the number: any fixed value makes a run reproducible
STATELESS_EXAMPLES = 100  # per operation in the fuzzing phase (examples and coverage cases come on top)
STATEFUL_SCENARIOS = 150
STATEFUL_STEPS = 10  # per scenario
MIN_CASES = 1000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NOT_FUZZED = "/admin/backup/restore"

COUNTS: Counter[str] = Counter()
STARTED: list[float] = []
CONFIG = schemathesis.Config.from_dict({"seed": SEED, "generation": {"deterministic": True, "database": "none"}})

# The operations are read from the document the app builds (no server is needed for that), so that pytest
# collects one test per operation; the cases are sent to the served store, whose document must be the same.
# (The lazy form, `schemathesis.pytest.from_fixture`, is not used: schemathesis 4.32 reads `Function._nodeid`
# there, which pytest 9.2 no longer has.)
DOCUMENT = create_app().openapi()  # no store is opened (that happens when the app starts)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(path=NOT_FUZZED)


def _drain(stream: IO[bytes], into: Path) -> None:
    """Keep the server's stderr flowing into a file: a full pipe would block the server on its next log line."""
    with into.open("wb") as out:
        for line in iter(stream.readline, b""):
            out.write(line)
            out.flush()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("fuzz")
    server = start_server(root / "data")
    assert server.process.stderr is not None
    log = root / "server.log"
    threading.Thread(target=_drain, args=(server.process.stderr, log), daemon=True).start()
    try:
        yield server
    finally:
        stop_server(server)
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Traceback" in text:
            print(f"\n--- server log: {text.count('Traceback')} tracebacks; the last ---\n{text[-3000:]}")


@pytest.fixture(scope="module")
def api_schema(served: LiveServer) -> Any:
    # The URL is 127.0.0.1, so every request carries `Host: 127.0.0.1:<port>` (a loopback name).
    loaded = schemathesis.openapi.from_url(f"{served.url}/openapi.json", config=CONFIG)
    assert loaded.raw_schema == DOCUMENT  # the served document is the one the operations were read from
    return loaded.exclude(path=NOT_FUZZED)


@SCHEMA.parametrize()
@hypothesis.settings(max_examples=STATELESS_EXAMPLES)
def test_every_operation_keeps_its_contract(case: schemathesis.Case, served: LiveServer) -> None:
    if not STARTED:
        STARTED.append(time.monotonic())
    COUNTS["stateless"] += 1
    case.call_and_validate(base_url=served.url, checks=CHECKS, timeout=60)


@pytest.mark.timeout(600)  # ~1,500 chained calls: well under a minute alone, slower on a shared CI machine
def test_chained_operations_keep_their_contract(api_schema: Any) -> None:
    base = api_schema.as_state_machine()

    class Machine(base):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"timeout": 60}

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            COUNTS["stateful"] += 1
            COUNTS[f"stateful {case.operation.label}"] += 1
            case.validate_response(
                response, checks=CHECKS, transport_kwargs=kwargs or None, recorder=getattr(self, "recorder", None)
            )

    Machine.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    chained = {label for label in COUNTS if label.startswith("stateful ")}
    print(f"\nstateful: {COUNTS['stateful']} calls; " + ", ".join(f"{k[9:]} {COUNTS[k]}" for k in sorted(chained)))
    # The links reach past creation: documents are added, read and searched in a collection made before.
    assert "stateful POST /v1/collections" in chained, sorted(chained)
    assert "stateful POST /v1/collections/{name}/documents" in chained, sorted(chained)
    assert "stateful POST /v1/collections/{name}/search" in chained, sorted(chained)


def test_the_run_was_large_enough() -> None:
    if not COUNTS["stateless"] or not COUNTS["stateful"]:
        pytest.skip("counts the cases of the whole module: run it whole")
    total = COUNTS["stateless"] + COUNTS["stateful"]
    took = time.monotonic() - STARTED[0]
    print(
        f"\nschemathesis: {COUNTS['stateless']} stateless + {COUNTS['stateful']} stateful = {total} cases, {took:.0f} s"
    )
    assert total >= MIN_CASES
