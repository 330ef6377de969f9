"""Shared fixtures: real SQLite files in temporary directories, the real local model loaded once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from ragstore.config import Settings
from ragstore.embeddings.base import EmbedKind
from ragstore.embeddings.local import LocalEmbedder
from ragstore.service import RagStore

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def pytest_configure(config: pytest.Config) -> None:
    """pytest-xdist starts its workers with COLUMNS=80 and LINES=24, and rich's consoles (made when a test
    module first imports `ragstore.cli`) would keep those 80 columns for good, where a test asks for wider
    output through CliRunner's env: a worker then sees the terminal a serial run sees (none)."""
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


def in_fresh_store_process(data_dir: Path, lines: Sequence[str], *, first: Sequence[str] = (), **env: str) -> str:
    """What a new Python process printed after opening a SQLite store in `data_dir` (`store`) and running
    `lines`: for what one process loads first, which a test process has loaded long before. `first` runs
    right after `import ragstore`, before anything else is imported. Fails on a non-zero exit with the
    process's stderr."""
    script = "\n".join(
        [
            "import ragstore",
            *first,
            "from ragstore.service import RagStore",
            "from ragstore.config import load_settings",
            "store = RagStore.open(load_settings(), start_worker=False)",
            *lines,
            "store.close()",
        ]
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environ.update(env, RAGSTORE_DATA_DIR=str(data_dir))
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their own Settings; variables of the machine running them must not leak in."""
    for key in list(os.environ):
        if key.startswith(("RAGSTORE_", "OPENAI_", "SQLITE_")) and not key.startswith(
            ("RAGSTORE_TEST_", "RAGSTORE_REQUIRE_")
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    # Starlette's TestClient sends `Host: testserver`; a test server answers to it as to loopback names
    # (Django's test runner adds the same name to ALLOWED_HOSTS).
    monkeypatch.setenv("RAGSTORE_ALLOWED_HOSTS", "localhost,127.0.0.1,::1,testserver")


class CountingEmbedder:
    """The real local model, counting how many texts it was asked to embed."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model
        self.dimension = inner.dimension
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str], *, kind: EmbedKind) -> NDArray[np.float32]:
        self.calls.append(len(texts))
        return self.inner.embed(texts, kind=kind)

    @property
    def texts_embedded(self) -> int:
        return sum(self.calls)


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture
def embedder(local_embedder: LocalEmbedder) -> CountingEmbedder:
    return CountingEmbedder(local_embedder)


# -- the relational store under test: every store-backed test runs on SQLite and on PostgreSQL ------------
REQUIRE_SERVICES = os.environ.get("RAGSTORE_REQUIRE_SERVICES") == "1"
TEST_DATABASE_URL = os.environ.get("RAGSTORE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def service_missing(reason: str) -> None:
    """Skip with the reason; in CI (RAGSTORE_REQUIRE_SERVICES=1) a missing service is a failure."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (RAGSTORE_REQUIRE_SERVICES=1: the service is required)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_run_url() -> Iterator[str]:
    """A database of this test run's own on the server of RAGSTORE_TEST_DATABASE_URL, dropped at the end."""
    from pgtools import create_run_database, drop_database

    try:
        url = create_run_database(TEST_DATABASE_URL)
    except Exception as exc:
        service_missing(f"PostgreSQL at {TEST_DATABASE_URL} is not available: {exc}")
        raise AssertionError("unreachable") from exc
    yield url
    drop_database(TEST_DATABASE_URL, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite (the file under the data directory); for PostgreSQL, a fresh schema of the run's database."""
    if request.param == "sqlite":
        yield None
        return
    from pgtools import create_schema, drop_schema

    run_url = request.getfixturevalue("postgres_run_url")
    schema, url = create_schema(run_url)
    yield url
    drop_schema(run_url, schema)


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str | None) -> Callable[..., Settings]:
    """Settings for this test's data directory and database; keyword arguments override."""

    def build(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        # Tests of a feature call its routes as the local operator (auth off, which TestClient's loopback
        # allows); who may call what is proven by the authorization matrix, the fuzz runs with and without
        # keys and the live server, which run with RAGSTORE_AUTH=required (the default everywhere else).
        overrides.setdefault("auth", "off")
        # No health snapshot at each minute's turn in a test's app (a test that wants one asks for it): a
        # row appearing mid-test would be noise to the tests that compare stores (tests/test_health_history.py).
        overrides.setdefault("health_snapshot_schedule", "")
        if database_url is not None:
            overrides.setdefault("database_url", database_url)
        return Settings(**overrides)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings, embedder: CountingEmbedder) -> Iterator[RagStore]:
    with RagStore.open(settings, embedder=embedder) as opened:
        yield opened


class PostgresDatabases:
    """New, empty database names on the test server (created by the code under test), dropped afterwards."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.names: list[str] = []

    def new_database_url(self) -> str:
        from sqlalchemy.engine import make_url

        name = f"ragstore_t_{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)

    def created_database_url(self) -> str:
        """A new, empty database of the test's own (whole, not a schema), dropped at the end."""
        import psycopg
        from psycopg import sql
        from sqlalchemy.engine import make_url

        url = self.new_database_url()
        admin = make_url(self.base_url).set(drivername="postgresql", database="postgres")
        try:
            with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(make_url(url).database))))
        except psycopg.OperationalError as exc:
            service_missing(f"PostgreSQL at {self.base_url} is not available: {exc}")
        return url

    def drop_all(self) -> None:
        if not self.names:
            return
        import psycopg
        from psycopg import sql
        from sqlalchemy.engine import make_url

        url = make_url(self.base_url).set(drivername="postgresql", database="postgres")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
            rows = conn.execute("SELECT datname FROM pg_database").fetchall()
            for (name,) in rows:
                if any(name.startswith(n) for n in self.names):
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_admin() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(TEST_DATABASE_URL)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real `ragstore serve` over a throwaway store (tests/hostile/live.py), one per test module; tests must
    leave it as they found it (row counts, a clean check). Defined here, not in a conftest of tests/hostile:
    two modules named `conftest` on the path would shadow each other."""
    from hostile.live import start_server, stop_server

    server = start_server(tmp_path_factory.mktemp("hostile") / "data")
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def unchanged(live_server: Any) -> Iterator[None]:
    """The live store is exactly as before the test (row counts), its check is clean, and it still answers a
    normal search: what every hostile input must leave behind."""
    before = live_server.row_counts()
    yield
    assert live_server.row_counts() == before
    live_server.check_clean()
    live_server.assert_serves_search()
