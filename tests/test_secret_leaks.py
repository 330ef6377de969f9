"""No secret leaves the process: a real `ragstore serve` with KNOWN values for every server secret, the backup
key, an OpenAI key and the passwords inside DATABASE_URL and REDIS_URL is exercised (health, errors, bad
requests, a backup and its verification) and the CLI is run with the same environment (config show and
check, secrets rotate and list, a failing command); then the server's log, every response body and every
line of CLI output are grepped for each secret in each spelling an attacker could search for (the text as
configured, the key's raw bytes, hex in either case, base64 and base64url with or without padding). The
database file (or a pg_dump) must not hold the value stored through the vault, nor any server secret.

Authentication: the server runs with RAGSTORE_AUTH=required and every request sends the admin key `ragstore
init` wrote, which must not appear in the server's log either.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

import ragstore

SRC = str(Path(ragstore.__file__).resolve().parent.parent)
PORT = 18500  # this suite's own ports (18500-18599)
REDIS_PORT = 18501
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")

# -- the one place that says how the test authenticates ----------------------------------------------------
SERVER_AUTH = {"RAGSTORE_AUTH": "required"}


def auth_headers(data_dir: Path) -> dict[str, str]:
    """Headers every request sends: the admin key `ragstore init` wrote."""
    return {"Authorization": f"Bearer {(data_dir / 'admin.key').read_text().strip()}"}


# -- the known secrets -------------------------------------------------------------------------------------


def known_key(label: str) -> bytes:
    return hashlib.sha256(f"ragstore leak test {label}".encode()).digest()


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


# Each 32-byte key configured in a different spelling, so a leak of any spelling is looked for in all.
KEYS: dict[str, tuple[bytes, str]] = {
    "API_KEY_SALT": (known_key("salt"), b64(known_key("salt"))),
    "JWT_SECRET": (known_key("jwt"), known_key("jwt").hex()),
    "AUDIT_SIGNING_KEY": (known_key("audit"), base64.urlsafe_b64encode(known_key("audit")).decode().rstrip("=")),
    "ENCRYPTION_KEY": (known_key("encryption"), b64(known_key("encryption"))),
    "ENCRYPTION_KEY_PREVIOUS": (known_key("previous"), known_key("previous").hex().upper()),
    "BACKUP_ENCRYPTION_KEY": (known_key("backup"), b64(known_key("backup"))),
}
# What the local profile generates into <data dir>/secrets/ when they are not configured.
SERVER_KEYS = ("API_KEY_SALT", "JWT_SECRET", "AUDIT_SIGNING_KEY", "ENCRYPTION_KEY", "ENCRYPTION_KEY_PREVIOUS")
OPENAI_API_KEY = "sk-proj-leakcheck-5Qw8Zr2Tn6Yb1Vx4"
PG_PASSWORD = "pgpass-leakcheck-7c4d1e"
REDIS_PASSWORD = "redispass-leakcheck-2b9f0a"
VAULT_VALUE = "sk-vault-leakcheck-Hs83kQ0pLm"


def spellings(secret: bytes | str) -> list[bytes]:
    """What a grep for `secret` must find nowhere: a key's raw bytes and text forms, or a text's own bytes and
    their encodings."""
    raw = secret if isinstance(secret, bytes) else secret.encode()
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms += [encoded, encoded.rstrip(b"=")]
    return forms


def all_secrets(with_pg: bool, with_redis: bool) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {name: key for name, (key, _) in KEYS.items()}
    found |= {f"{name} as configured": text for name, (_, text) in KEYS.items()}
    found |= {"OPENAI_API_KEY": OPENAI_API_KEY, "vault value": VAULT_VALUE}
    if with_pg:
        found["DATABASE_URL password"] = PG_PASSWORD
    if with_redis:
        found["REDIS_URL password"] = REDIS_PASSWORD
    return found


def leaks(blob: bytes, secrets: dict[str, bytes | str]) -> list[str]:
    return [name for name, secret in secrets.items() if any(form in blob for form in spellings(secret))]


def test_the_grep_finds_every_spelling() -> None:
    """The check below is worth only what its grep finds: each spelling of a key, and a text's encodings."""
    key, configured = KEYS["JWT_SECRET"]
    secrets = {"JWT_SECRET": key}
    for blob in (
        b"x" + key + b"y",
        f"a={key.hex().upper()}".encode(),
        f"value: {b64(key)}".encode(),
        base64.urlsafe_b64encode(key).rstrip(b"="),
        configured.encode(),
    ):
        assert leaks(blob, secrets) == ["JWT_SECRET"], blob
    assert leaks(base64.b64encode(OPENAI_API_KEY.encode()), {"openai": OPENAI_API_KEY}) == ["openai"]
    assert leaks(b"nothing here", secrets) == []


# -- the processes -----------------------------------------------------------------------------------------


@dataclass
class Seen:
    """Everything the test saw come out of ragstore, by where it came from."""

    outputs: dict[str, bytes] = field(default_factory=dict)

    def add(self, where: str, blob: bytes | str) -> None:
        self.outputs[where] = blob.encode() if isinstance(blob, str) else blob


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    proc = subprocess.Popen(
        [binary, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD, *NO_PERSISTENCE],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, password=REDIS_PASSWORD)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{REDIS_PORT}/0"
    finally:
        proc.kill()
        proc.wait(10)


def environment(tmp_path: Path, database_url: str | None, redis_url: str | None, keys: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL", "REDIS_URL"))}
    env = {k: v for k, v in env.items() if k not in KEYS and k != "OPENAI_API_KEY"}
    env.update({name: text for name, (_, text) in KEYS.items() if keys == "configured" or name not in SERVER_KEYS})
    env.update(
        RAGSTORE_DATA_DIR=str(tmp_path / "data"),
        RAGSTORE_ALLOWED_HOSTS="127.0.0.1,localhost",
        RAGSTORE_LOG_LEVEL="DEBUG",  # the most a log can say
        RAGSTORE_API_ACCESS_LOG="true",
        OPENAI_API_KEY=OPENAI_API_KEY,
        PYTHONPATH=SRC,
        **SERVER_AUTH,
    )
    if database_url is not None:
        env["DATABASE_URL"] = make_url(database_url).set(password=PG_PASSWORD).render_as_string(hide_password=False)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env


def cli(env: dict[str, str], seen: Seen, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "ragstore.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seen.add(f"ragstore {' '.join(args)} (exit {done.returncode})", done.stdout + done.stderr)
    return done


def serve(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ragstore.cli", "serve", "--host", "127.0.0.1", "--port", str(PORT)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/health", timeout=2).status_code < 500:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the server did not answer /health within 180 s")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def exercise(client: httpx.Client, seen: Seen) -> None:
    """Health, the normal path, every kind of error, and a backup with its verification."""

    def call(method: str, path: str, **kwargs: object) -> httpx.Response:
        answer = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        seen.add(f"{method} {path} -> {answer.status_code}", answer.content)
        seen.add(f"{method} {path} headers", str(dict(answer.headers)))
        return answer

    assert call("GET", "/health").status_code == 200
    call("GET", "/health/database")
    assert call("POST", "/v1/collections", json={"name": "leak"}).status_code in (200, 201)
    ingested = call("POST", "/v1/collections/leak/documents", json={"title": "t", "text": "Backups restore data."})
    assert ingested.status_code == 201, ingested.text
    assert call("POST", "/v1/collections/leak/search", json={"query": "backup", "k": 3}).status_code == 200
    # Errors of every kind: unknown things, bad bodies, bad types, wrong methods, a credential that is not one.
    assert call("GET", "/v1/collections/nowhere").status_code == 404
    assert call("POST", "/v1/collections/nowhere/search", json={"query": "x"}).status_code == 404
    assert call(
        "POST", "/v1/collections", content=b"{not json", headers={"content-type": "application/json"}
    ).status_code in (400, 422)
    assert call("POST", "/v1/collections", json={"name": ""}).status_code == 422
    assert call("POST", "/v1/collections/leak/search", json={"query": 5, "k": "many"}).status_code == 422
    assert call("POST", "/v1/collections/leak/search", json={"query": "x", "k": 10**9}).status_code == 422
    call("DELETE", "/health")
    call("GET", "/v1/jobs/999999999")
    call("GET", "/no/such/route")
    call("GET", "/v1/collections", headers={"Authorization": "Bearer rsk_notakey_0000000000000000"})
    call("POST", "/admin/backup/restore", json={"backup_id": "no-such-backup"})
    call("POST", "/admin/backup/verify", json={"backup_id": "../../etc/passwd"})
    # A backup, to its end, and its verification.
    assert call("POST", "/admin/backup/trigger", json={"kind": "full"}).status_code == 202
    deadline = time.monotonic() + 300
    while True:
        status = call("GET", "/admin/backup/status").json()
        latest = status.get("latest") or {}
        if latest.get("state") == "complete" or (latest and not status.get("running")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert call("POST", "/admin/backup/verify", json={}).json()["ok"]
    call("GET", "/admin/backup/list")
    call("GET", "/admin/backup/history")
    call("GET", "/admin/backup/dr")
    call("GET", "/health")


def database_blob(env: dict[str, str], data_dir: Path) -> bytes:
    """The database as an attacker with the files (or a dump) would read it."""
    if "DATABASE_URL" not in env:
        files = sorted(p for p in data_dir.iterdir() if p.name.startswith("ragstore.db"))
        assert files
        return b"".join(p.read_bytes() for p in files)
    url = make_url(env["DATABASE_URL"])
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    conninfo = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    dump = subprocess.run(
        ["pg_dump", "--dbname", conninfo, "--schema", schema], capture_output=True, timeout=300, check=True
    )
    assert b"encrypted_secrets" in dump.stdout
    return dump.stdout


@pytest.mark.parametrize(
    ("database_url", "keys"),
    [("sqlite", "configured"), ("postgresql", "configured"), ("sqlite", "generated")],
    indirect=["database_url"],
)
def test_no_secret_reaches_a_log_a_body_the_cli_or_the_database(
    tmp_path: Path, database_url: str | None, redis_with_password: str | None, keys: str
) -> None:
    """`configured`: every key set, in different spellings. `generated`: the server keys unset, as `make run`
    has them, so they are made into <data dir>/secrets/ and must be masked as they are read."""
    env = environment(tmp_path, database_url, redis_with_password, keys)
    data_dir = tmp_path / "data"
    seen = Seen()
    assert cli(env, seen, "init").returncode == 0
    # A secret stored under the previous key, so the server reads it through the pair and the CLI rotates it.
    before_rotation = {**env}
    if keys == "configured":
        before_rotation["ENCRYPTION_KEY"] = before_rotation.pop("ENCRYPTION_KEY_PREVIOUS")
    stored = cli(before_rotation, seen, "secrets", "set", "collection:leak", "openai_api_key", stdin=VAULT_VALUE)
    assert stored.returncode == 0, stored.stderr

    log_path = tmp_path / "server.log"
    server = serve(env, log_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=120, headers=auth_headers(data_dir)) as client:
            exercise(client, seen)
        for args in (
            ("config", "show"),
            ("config", "show", "--json"),
            ("config", "check"),
            ("config", "check", "--json"),
            ("secrets", "list", "--json"),
            ("secrets", "rotate"),
            ("secrets", "rotate", "--json"),
            ("backup", "list", "--json"),
            ("dr", "report", "--json"),
        ):
            assert cli(env, seen, *args).returncode in (0, 1), seen.outputs
        # A command that fails on a URL with a password in it (a closed port), and one with a bad key.
        unreachable = make_url("postgresql+psycopg://app@127.0.0.1:1/nowhere").set(password=PG_PASSWORD)
        broken = {**env, "DATABASE_URL": unreachable.render_as_string(hide_password=False)}
        assert cli(broken, seen, "config", "check").returncode != 0
        assert cli({**env, "ENCRYPTION_KEY": "short"}, seen, "secrets", "set", "s", "n", stdin="v").returncode == 2
    finally:
        stop(server)
    seen.add("server log", log_path.read_bytes())
    admin_key = (data_dir / "admin.key").read_text().strip()
    assert admin_key.encode() not in log_path.read_bytes(), "the admin key reached the server log"

    secrets = all_secrets(with_pg=database_url is not None, with_redis=redis_with_password is not None)
    if keys == "generated":
        made = {p.name: p.read_text().strip() for p in (data_dir / "secrets").iterdir()}
        assert "encryption_key" in made, made  # the vault used it (the other keys once their features do)
        secrets |= {f"generated {name}": text for name, text in made.items()}
        secrets |= {f"generated {name} (bytes)": bytes.fromhex(text) for name, text in made.items()}
    assert b"GET /admin/backup/status" in seen.outputs["server log"] and len(seen.outputs) > 40
    found = {where: names for where, blob in seen.outputs.items() if (names := leaks(blob, secrets))}
    assert not found, f"secrets seen: {found}"
    # The rotation happened and config show masked what it shows.
    rotated = b"re-encrypted 1 secret(s)" if keys == "configured" else b"re-encrypted 0 secret(s)"
    assert rotated in seen.outputs["ragstore secrets rotate (exit 0)"]
    shown = seen.outputs["ragstore config show --json (exit 0)"]
    assert b"**********" in shown and (keys == "configured") != (b"(generated in " in shown)

    at_rest = database_blob(env, data_dir)
    assert not leaks(at_rest, secrets), leaks(at_rest, secrets)
    backups = b"".join(p.read_bytes() for p in (data_dir / "backups").rglob("*") if p.is_file())
    assert backups and not leaks(backups, secrets)
