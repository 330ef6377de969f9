"""Settings: environment, .env files and profiles, validation that names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstore.config import Settings, load_settings
from ragstore.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_need_no_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.env == "local"
    assert settings.sqlalchemy_url.startswith("sqlite:///") and settings.sqlalchemy_url.endswith("data/ragstore.db")
    assert settings.vector_backend == "embedded" and settings.embedding_backend == "local"


def test_profile_file_overrides_dotenv_and_environment_overrides_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("RAGSTORE_ENV=test\nRAGSTORE_CHUNK_SIZE_TOKENS=300\nRAGSTORE_API_PORT=9000\n")
    (tmp_path / ".env.test").write_text("RAGSTORE_CHUNK_SIZE_TOKENS=400\n")
    settings = load_settings(tmp_path)
    assert (settings.env, settings.chunk_size_tokens, settings.api_port) == ("test", 400, 9000)
    monkeypatch.setenv("RAGSTORE_CHUNK_SIZE_TOKENS", "500")
    assert load_settings(tmp_path).chunk_size_tokens == 500


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RAGSTORE_CHUNK_SIZE_TOKENS", "abc", "RAGSTORE_CHUNK_SIZE_TOKENS"),
        ("RAGSTORE_API_PORT", "70000", "RAGSTORE_API_PORT"),
        ("RAGSTORE_ENV", "staging", "RAGSTORE_ENV"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("RAGSTORE_EMBEDDING_BACKEND", "openai", "OPENAI_API_KEY"),
        ("RAGSTORE_CHUNK_OVERLAP_TOKENS", "999", "RAGSTORE_CHUNK_OVERLAP_TOKENS"),
    ],
)
def test_a_wrong_value_names_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path)


def test_secrets_are_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app:hunter2@db:5432/rag")
    shown = str(load_settings(tmp_path).masked())
    assert "sk-very-secret" not in shown and "hunter2" not in shown


def test_env_example_documents_every_setting() -> None:
    from ragstore.config import Settings

    example = (ROOT / ".env.example").read_text()
    names = [str(f.validation_alias.choices[0]) for f in Settings.model_fields.values()]  # type: ignore[union-attr]
    missing = [n for n in names if n not in example]
    assert not missing, f".env.example does not document: {missing}"


@pytest.mark.parametrize(
    ("env", "backend", "message"),
    [("local", "pinecone", "unknown backend 'pinecone'"), ("production", "memory", "refused in production")],
)
def test_a_vector_backend_the_registry_refuses_is_named_at_open_and_by_config_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, backend: str, message: str
) -> None:
    """Which backends exist is the vector registry's knowledge (config sits below it): the registry refuses
    the name where settings become an index, and `ragstore config check` asks it too."""
    from typer.testing import CliRunner

    from ragstore.cli import app
    from ragstore.service import RagStore

    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAGSTORE_ENV", env)
    monkeypatch.setenv("RAGSTORE_VECTOR_BACKEND", backend)
    for secret in ("API_KEY_SALT", "JWT_SECRET", "AUDIT_SIGNING_KEY", "ENCRYPTION_KEY"):  # production needs them
        monkeypatch.setenv(secret, "ab" * 32)
    settings = load_settings(tmp_path)
    with pytest.raises(ConfigError, match=f"RAGSTORE_VECTOR_BACKEND.*{message}|{message}"):
        RagStore.open(settings)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 2 and "RAGSTORE_VECTOR_BACKEND" in result.output and message in result.output


def test_the_milvus_uri_is_ragstores_own_name_and_the_old_one_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pymilvus reads MILVUS_URI itself (vectors/milvus.py keeps it from seeing it); ragstore's name is its own."""
    monkeypatch.setenv("MILVUS_URI", "./old/milvus.db")
    assert load_settings(tmp_path).milvus_uri == "./old/milvus.db"
    monkeypatch.setenv("RAGSTORE_MILVUS_URI", "./new/milvus.db")
    assert load_settings(tmp_path).milvus_uri == "./new/milvus.db"
    assert load_settings(tmp_path).masked()["RAGSTORE_MILVUS_URI"] == "./new/milvus.db"


@pytest.mark.parametrize("shape", ["file", "below a file"])
def test_a_data_dir_that_cannot_be_a_folder_is_a_config_error_naming_it(tmp_path: Path, shape: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    settings = load_settings(tmp_path, data_dir=blocker if shape == "file" else blocker / "data")
    with pytest.raises(ConfigError, match="RAGSTORE_DATA_DIR"):
        settings.make_data_dir()


def test_malloc_tuning_defaults_and_zero_leaves_glibc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    from ragstore.runtime.malloc_tuning import tune_malloc

    for name in ("RAGSTORE_MALLOC_ARENA_MAX", "MALLOC_ARENA_MAX"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().malloc_arena_max == 2
    assert tune_malloc(2) is (platform.libc_ver()[0] == "glibc")  # this machine's glibc takes it
    monkeypatch.setenv("RAGSTORE_MALLOC_ARENA_MAX", "0")
    assert Settings().malloc_arena_max == 0
    assert tune_malloc(0) is False
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # glibc's own variable wins
    assert tune_malloc(2) is False
