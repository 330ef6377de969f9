"""Secrets are masked wherever they could appear: `config show` (text and JSON), `config check`, CLI error
lines, API error bodies and logs. Every secret-bearing setting gets a known value; every output is grepped."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import ragstore
from ragstore.config import Settings, load_settings
from ragstore.errors import ConfigError, Unavailable
from ragstore.keys import generate_key
from ragstore.secrets_mask import mask, register, url_password

SRC = str(Path(ragstore.__file__).resolve().parent.parent)
BACKUP_KEY = generate_key()
# One distinct value per secret-bearing setting, each found nowhere else, so a grep for it finds only a leak.
SECRETS = {
    "DATABASE_URL": ("postgresql+psycopg://app:dbpass-4f1e9a@127.0.0.1:1/rag", "dbpass-4f1e9a"),
    "REDIS_URL": ("redis://cache:redispass-77b2c0@127.0.0.1:1/0", "redispass-77b2c0"),
    "CHROMA_URL": ("http://chroma:chromapass-a0c3d1@127.0.0.1:1", "chromapass-a0c3d1"),
    "OPENAI_BASE_URL": ("http://proxy:proxypass-5e6f70@127.0.0.1:1/v1", "proxypass-5e6f70"),
    "RAGSTORE_MILVUS_URI": ("http://root:milvusuri-0b9d2e@127.0.0.1:1", "milvusuri-0b9d2e"),
    "MILVUS_PASSWORD": ("milvuspass-3c8a41", "milvuspass-3c8a41"),
    "OPENAI_API_KEY": ("sk-openai-known-9d7e65", "sk-openai-known-9d7e65"),
    "BACKUP_ENCRYPTION_KEY": (BACKUP_KEY, BACKUP_KEY),
}
VALUES = [secret for _, secret in SECRETS.values()]


def assert_no_secret(text: str) -> None:
    leaked = [v for v in VALUES if v in text]
    assert not leaked, f"secrets in the output: {leaked}\n{text}"


def cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL", "MILVUS_", "CHROMA_"))}
    env.update({name: value for name, (value, _) in SECRETS.items()})
    env.update(RAGSTORE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=SRC, **extra)
    return subprocess.run(
        [sys.executable, "-m", "ragstore.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the masking itself ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql+psycopg://app:pw@db:5432/rag", "postgresql+psycopg://app:***@db:5432/rag"),
        ("redis://:only-password@h:6379/0", "redis://:***@h:6379/0"),
        ("got 'postgresql://u:p/with/slash@db/x' and http://a:b@c", "got 'postgresql://u:***@db/x' and http://a:***@c"),
        ("http://user@host/no-password", "http://user@host/no-password"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("echoed: Bearer sk-abc.def_123 and Basic dXNlcjpwdw==!", "echoed: Bearer *** and Basic ***!"),
        ("Basic checks use Bearer authentication", "Basic checks use Bearer authentication"),
    ],
)
def test_a_password_inside_a_url_is_masked_by_its_shape(text: str, shown: str) -> None:
    assert mask(text) == shown


def test_a_registered_secret_is_masked_as_a_whole_token_only() -> None:
    register("tok-ZX81-registered", "p%40ss-registered")
    assert mask("key tok-ZX81-registered, again:tok-ZX81-registered.") == "key ***, again:***."
    assert mask("tok-ZX81-registeredX stays") == "tok-ZX81-registeredX stays"
    assert mask("decoded p@ss-registered") == "decoded ***"  # a URL's password also in its decoded form
    assert url_password("postgresql://u:p%40ss@db/x") == "p%40ss"


# -- every output path, with every secret set -------------------------------------------------------------


def test_config_show_masks_every_secret_in_text_and_json(tmp_path: Path) -> None:
    text = cli(tmp_path, "config", "show")
    as_json = cli(tmp_path, "config", "show", "--json")
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    assert_no_secret(text.stdout + text.stderr + as_json.stdout + as_json.stderr)
    shown = json.loads(as_json.stdout)
    assert shown["REDIS_URL"] == "redis://cache:***@127.0.0.1:1/0"
    assert shown["OPENAI_API_KEY"] == shown["BACKUP_ENCRYPTION_KEY"] == "**********"


@pytest.mark.parametrize(
    "wrong",
    [
        {"RAGSTORE_API_PORT": "not-a-port"},  # a field error: pydantic echoes the input
        {"DATABASE_URL": "mysql://app:dbpass-4f1e9a@db/rag"},  # a combination error that quotes the URL
        {"REDIS_URL": "memcached://cache:redispass-77b2c0@h"},
        {"CHROMA_URL": "ftp://chroma:chromapass-a0c3d1@h"},
        {"RAGSTORE_MILVUS_URI": "tcp://root:milvusuri-0b9d2e@h:1"},
        {"BACKUP_ENCRYPTION_KEY": "sk-openai-known-9d7e65"},  # a malformed key must not be echoed either
    ],
)
def test_config_check_errors_never_echo_a_secret(tmp_path: Path, wrong: dict[str, str]) -> None:
    result = cli(tmp_path, "config", "check", **wrong)
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: invalid configuration") and "Traceback" not in result.stderr
    assert_no_secret(result.stdout + result.stderr)


@pytest.mark.parametrize("command", [("config", "check"), ("init",), ("collections", "list")])
def test_a_database_that_cannot_be_reached_is_named_without_its_password(tmp_path: Path, command: tuple[str]) -> None:
    result = cli(tmp_path, *command)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and "127.0.0.1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert_no_secret(result.stdout + result.stderr)


def test_a_secret_invalid_for_its_field_is_not_echoed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-known-9d7e65")
    monkeypatch.setenv("REDIS_URL", "nope://u:redispass-77b2c0@h")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert "REDIS_URL" in caught.value.message
    assert_no_secret(caught.value.message + json.dumps(caught.value.details))


def _settings(tmp_path: Path, **extra: object) -> Settings:
    values: dict[str, object] = {name: value for name, (value, _) in SECRETS.items()}
    values.update(RAGSTORE_DATA_DIR=tmp_path / "data", **extra)
    return Settings(**values)  # type: ignore[arg-type]


def test_logs_are_masked_whatever_logs_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _settings(tmp_path)
    log = logging.getLogger("some.library")  # not ragstore's: masking does not depend on the logger
    with caplog.at_level(logging.INFO):
        log.info("connecting to %s with key %s", cfg.redis_url, "sk-openai-known-9d7e65")
        log.warning("DATABASE_URL=" + str(cfg.database_url))
        log.info("%s %s %d", "proxy", cfg.openai_base_url, 3)
        try:
            raise ConnectionError(f"cannot reach {cfg.chroma_url} (password {cfg.milvus_password.get_secret_value()})")
        except ConnectionError:
            log.exception("chroma is down")
    text = caplog.text + "".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert_no_secret(text)
    assert "redis://cache:***@127.0.0.1:1/0" in text and "ConnectionError" in text
    assert caplog.records[2].args == ("proxy", "http://proxy:***@127.0.0.1:1/v1", 3)  # still a tuple for %d


def test_errors_mask_their_message_when_made(tmp_path: Path) -> None:
    cfg = _settings(tmp_path)
    exc = Unavailable(f"lost {cfg.database_url}", details={"seen": [cfg.openai_api_key.get_secret_value()]})  # type: ignore[union-attr]
    assert_no_secret(str(exc) + exc.message + json.dumps(exc.to_dict()))


class EchoingAuthServer(BaseHTTPRequestHandler):
    """An embeddings endpoint that refuses the key and echoes it back, as some proxies and servers do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {self.headers.get('Authorization')}"}})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def echoing_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingAuthServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# With credentials in OPENAI_BASE_URL httpx sends them as Basic auth (base64 of user:password) in place of the key.
@pytest.mark.parametrize(("userinfo", "echoed"), [("", "Bearer ***"), ("proxy:proxypass-5e6f70@", "Basic ***")])
def test_an_api_error_body_never_carries_a_secret(
    tmp_path: Path, echoing_server: int, caplog: pytest.LogCaptureFixture, userinfo: str, echoed: str
) -> None:
    from ragstore.api.app import create_app
    from ragstore.service import RagStore

    cfg = _settings(
        tmp_path,
        DATABASE_URL=None,
        REDIS_URL=None,
        RAGSTORE_MILVUS_URI="",
        RAGSTORE_EMBEDDING_BACKEND="openai",
        OPENAI_BASE_URL=f"http://{userinfo}127.0.0.1:{echoing_server}/v1",
        OPENAI_MAX_RETRIES=0,
        RAGSTORE_AUTH="off",
    )
    store = RagStore.open(cfg)
    try:
        with TestClient(create_app(store=store)) as client, caplog.at_level(logging.DEBUG):
            assert client.post("/v1/collections", json={"name": "kb"}).status_code == 201
            refused = client.post("/v1/collections/kb/documents", json={"text": "a document to embed"})
            searched = client.post("/v1/collections/kb/search", json={"query": "anything", "mode": "dense"})
    finally:
        store.close()
    assert refused.status_code == 503 and f"Incorrect API key provided: {echoed}" in refused.text, refused.text
    assert searched.status_code == 503, searched.text
    basic = "cHJveHk6cHJveHlwYXNzLTVlNmY3MA=="  # base64 of proxy:proxypass-5e6f70
    assert_no_secret(refused.text + searched.text + caplog.text)
    assert basic not in refused.text + searched.text + caplog.text
