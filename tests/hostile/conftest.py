"""The hostile suite's fixture: one real server per test module (see `live.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live import LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per test module; tests must leave it as they found it (row counts, a clean check)."""
    server = start_server(tmp_path_factory.mktemp("hostile") / "data")
    try:
        yield server
    finally:
        stop_server(server)
