"""Settings: the one place configuration is read, typed and validated.

Values come from (highest priority first) keyword arguments, environment variables, `.env.{RAGSTORE_ENV}`
and `.env`. No file is needed: every default runs the embedded, offline profile. A wrong value fails at
start-up with the variable's name, never later in the middle of a request.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragstore.errors import ConfigError
from ragstore.keys import decode_key
from ragstore.secrets_mask import install_log_masking, mask, register, url_password

__all__ = ["RATE_LIMIT", "Profile", "Settings", "load_settings", "parse_role_limits"]

_Engine = Literal["auto", "int8", "float32"]
# One rate limit, "N/second|minute|hour|day|month|year" or "N per M minutes": the `limits` library's grammar
# (its parser costs ~120 ms to import, and every command reads its settings: the server parses them later).
RATE_LIMIT = re.compile(
    r"\s*[1-9][0-9]{0,8}\s*(?:/|\s+per\s+)\s*(?:[1-9][0-9]{0,5}\s*)?(?:second|minute|hour|day|month|year)s?\s*",
    re.IGNORECASE,
)
_RATE_LIMIT_ROLES = ("read", "write", "admin", "metrics")


def parse_role_limits(text: str) -> dict[str, str]:
    """RAGSTORE_RATE_LIMIT_ROLES, "read=1200/minute;admin=6000/minute", as {role: limit}; a ValueError names
    the variable and the part it cannot read."""
    limits: dict[str, str] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        role, _, limit = (x.strip() for x in part.partition("="))
        if role.lower() not in _RATE_LIMIT_ROLES or not RATE_LIMIT.fullmatch(limit):
            raise ValueError(
                f"RAGSTORE_RATE_LIMIT_ROLES: {part!r} is not ROLE=LIMIT with a role of "
                f"{', '.join(_RATE_LIMIT_ROLES)} and a limit like 1200/minute"
            )
        limits[role.lower()] = limit
    return limits


Profile = Literal["local", "production", "test"]
PROFILES: tuple[str, ...] = ("local", "production", "test")


def _env(name: str, *old_names: str) -> Any:
    """A field read from one environment variable, so error messages can name it (the first name; older
    spellings after it are still read, for configurations written before the rename)."""
    return AliasChoices(name, *old_names)


class Settings(BaseSettings):
    """Every setting ragstore reads. Field docs are the reference; `.env.example` mirrors them."""

    model_config = SettingsConfigDict(
        env_file=None,
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
        validate_default=True,
    )

    env: Profile = Field("local", validation_alias=_env("RAGSTORE_ENV"))
    data_dir: Path = Field(Path("data"), validation_alias=_env("RAGSTORE_DATA_DIR"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    auto_migrate: bool = Field(True, validation_alias=_env("RAGSTORE_AUTO_MIGRATE"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias=_env("RAGSTORE_LOG_LEVEL"))

    # relational store (SQLite)
    sqlite_busy_timeout_ms: int = Field(5000, ge=0, le=600_000, validation_alias=_env("SQLITE_BUSY_TIMEOUT_MS"))
    sqlite_cache_size_mb: int = Field(64, ge=1, le=16_384, validation_alias=_env("SQLITE_CACHE_SIZE_MB"))
    sqlite_lock_retries: int = Field(5, ge=0, le=100, validation_alias=_env("SQLITE_LOCK_RETRIES"))

    # the server's malloc arenas, shared by its request threads (glibc; runtime/malloc_tuning.py; 0: 8 per core)
    malloc_arena_max: int = Field(2, ge=0, le=1024, validation_alias=_env("RAGSTORE_MALLOC_ARENA_MAX"))

    # relational store: the pool each process keeps (both dialects), and how long a statement may run
    database_pool_size: int = Field(10, ge=1, le=1000, validation_alias=_env("DATABASE_POOL_SIZE"))
    database_max_overflow: int = Field(20, ge=0, le=1000, validation_alias=_env("DATABASE_MAX_OVERFLOW"))
    database_pool_timeout_s: float = Field(30.0, gt=0, le=3600, validation_alias=_env("DATABASE_POOL_TIMEOUT_S"))
    database_pool_recycle_s: int = Field(1800, ge=-1, le=86_400, validation_alias=_env("DATABASE_POOL_RECYCLE_S"))
    database_connect_timeout_s: int = Field(10, ge=1, le=600, validation_alias=_env("DATABASE_CONNECT_TIMEOUT_S"))
    database_statement_timeout_ms: int = Field(
        30_000, ge=0, le=86_400_000, validation_alias=_env("DATABASE_STATEMENT_TIMEOUT_MS")
    )
    # statements slower than this are counted by fingerprint in slow_statements (`ragstore db slow`); 0: off
    slow_query_ms: float = Field(250.0, ge=0, le=3_600_000, validation_alias=_env("RAGSTORE_SLOW_QUERY_MS"))

    # vector index: a backend's name in the registry (vectors/registry.py), checked in _check_combinations
    vector_backend: str = Field("embedded", validation_alias=_env("RAGSTORE_VECTOR_BACKEND"))
    # Milvus: a path is Milvus Lite, http://host:19530 a server (MILVUS_URI: old name; pymilvus refuses paths)
    milvus_uri: str = Field("", validation_alias=_env("RAGSTORE_MILVUS_URI", "MILVUS_URI"))
    milvus_user: str = Field("", validation_alias=_env("MILVUS_USER"))
    milvus_password: SecretStr = Field(SecretStr(""), validation_alias=_env("MILVUS_PASSWORD"))
    milvus_timeout_s: float = Field(10.0, gt=0, le=600, validation_alias=_env("MILVUS_TIMEOUT"))
    milvus_collection_prefix: str = Field(
        "ragstore_", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", validation_alias=_env("MILVUS_COLLECTION_PREFIX")
    )
    milvus_hnsw_threshold: int = Field(1_000, ge=0, le=10**9, validation_alias=_env("MILVUS_HNSW_THRESHOLD"))
    # Chroma: CHROMA_URL for a server, else an embedded store in CHROMA_PATH (default <data dir>/chroma)
    chroma_url: str | None = Field(None, validation_alias=_env("CHROMA_URL"))
    chroma_path: Path | None = Field(None, validation_alias=_env("CHROMA_PATH"))
    hnsw_connectivity: int = Field(16, ge=4, le=128, validation_alias=_env("RAGSTORE_HNSW_M"))
    hnsw_expansion_add: int = Field(64, ge=8, le=2048, validation_alias=_env("RAGSTORE_HNSW_EF_CONSTRUCTION"))
    hnsw_expansion_search: int = Field(64, ge=8, le=4096, validation_alias=_env("RAGSTORE_HNSW_EF_SEARCH"))
    target_recall: float = Field(0.98, ge=0.5, le=1.0, validation_alias=_env("RAGSTORE_TARGET_RECALL"))
    index_dtype: Literal["f32", "f16", "i8"] = Field(
        "f16", validation_alias=_env("RAGSTORE_INDEX_DTYPE", "RAGSTORE_HNSW_DTYPE")
    )
    index_persist_interval_s: float = Field(
        30.0, ge=0.5, le=86_400, validation_alias=_env("RAGSTORE_INDEX_PERSIST_INTERVAL_S")
    )

    # embeddings
    embedding_backend: Literal["local", "openai"] = Field("local", validation_alias=_env("RAGSTORE_EMBEDDING_BACKEND"))
    embedding_model: str | None = Field(None, validation_alias=_env("RAGSTORE_EMBEDDING_MODEL"))
    embedding_batch_size: int = Field(32, ge=1, le=2048, validation_alias=_env("RAGSTORE_EMBEDDING_BATCH_SIZE"))
    embedding_engine: _Engine = Field("auto", validation_alias=_env("RAGSTORE_EMBEDDING_ENGINE"))  # embeddings/local.py
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias=_env("OPENAI_BASE_URL"))
    openai_timeout_s: float = Field(30.0, gt=0, le=600, validation_alias=_env("OPENAI_TIMEOUT_S"))
    openai_max_retries: int = Field(5, ge=0, le=20, validation_alias=_env("OPENAI_MAX_RETRIES"))
    openai_price_per_million_tokens: float = Field(0.02, ge=0, validation_alias=_env("OPENAI_PRICE_PER_MILLION_TOKENS"))

    # text
    chunk_size_tokens: int = Field(256, ge=16, le=8192, validation_alias=_env("RAGSTORE_CHUNK_SIZE_TOKENS"))
    chunk_overlap_tokens: int = Field(32, ge=0, le=4096, validation_alias=_env("RAGSTORE_CHUNK_OVERLAP_TOKENS"))
    max_document_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, le=2 * 1024**3, validation_alias=_env("RAGSTORE_MAX_DOCUMENT_BYTES")
    )

    # sync worker
    sync_poll_interval_s: float = Field(1.0, gt=0, le=3600, validation_alias=_env("RAGSTORE_SYNC_POLL_INTERVAL_S"))
    sync_max_attempts: int = Field(8, ge=1, le=100, validation_alias=_env("RAGSTORE_SYNC_MAX_ATTEMPTS"))
    sync_backoff_base_s: float = Field(0.5, gt=0, le=3600, validation_alias=_env("RAGSTORE_SYNC_BACKOFF_BASE_S"))
    sync_backoff_max_s: float = Field(300.0, gt=0, le=86_400, validation_alias=_env("RAGSTORE_SYNC_BACKOFF_MAX_S"))
    sync_lease_s: float = Field(60.0, ge=1, le=86_400, validation_alias=_env("RAGSTORE_SYNC_LEASE_S"))
    sync_retain_s: float = Field(3600.0, ge=0, le=30 * 86_400, validation_alias=_env("RAGSTORE_SYNC_RETAIN_S"))
    worker_concurrency_jobs: int = Field(1, ge=1, le=64, validation_alias=_env("RAGSTORE_WORKER_JOB_THREADS"))

    # caches (in process by default; shared through Redis when REDIS_URL is set)
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    redis_max_connections: int = Field(50, ge=1, le=10_000, validation_alias=_env("REDIS_MAX_CONNECTIONS"))
    redis_timeout_s: float = Field(0.5, gt=0, le=60, validation_alias=_env("REDIS_TIMEOUT_S"))
    redis_retry_after_s: float = Field(5.0, gt=0, le=3600, validation_alias=_env("REDIS_RETRY_AFTER_S"))
    cache_namespace: str = Field(
        "ragstore", pattern=r"^[A-Za-z0-9_.-]{1,64}$", validation_alias=_env("RAGSTORE_CACHE_NAMESPACE")
    )
    cache_max_entries: int = Field(10_000, ge=0, le=10_000_000, validation_alias=_env("RAGSTORE_CACHE_MAX_ENTRIES"))
    embedding_cache_ttl_s: int = Field(86_400, ge=0, le=30 * 86_400, validation_alias=_env("EMBEDDING_CACHE_TTL"))
    search_cache_ttl_s: int = Field(300, ge=0, le=30 * 86_400, validation_alias=_env("SEARCH_CACHE_TTL"))
    session_cache_ttl_s: int = Field(3600, ge=0, le=30 * 86_400, validation_alias=_env("CACHE_TTL"))

    # search: the lexical index, hybrid fusion, and the query log
    lexical_analyzer: Literal["auto", "kiwi", "bigram"] = Field(
        "auto", validation_alias=_env("RAGSTORE_LEXICAL_ANALYZER")
    )
    search_mode: Literal["hybrid", "dense", "lexical"] = Field("hybrid", validation_alias=_env("RAGSTORE_SEARCH_MODE"))
    hybrid_rrf_k: int = Field(60, ge=1, le=10_000, validation_alias=_env("RAGSTORE_HYBRID_RRF_K"))
    hybrid_dense_weight: float = Field(1.0, ge=0, le=100, validation_alias=_env("RAGSTORE_HYBRID_DENSE_WEIGHT"))
    hybrid_lexical_weight: float = Field(1.0, ge=0, le=100, validation_alias=_env("RAGSTORE_HYBRID_LEXICAL_WEIGHT"))
    hybrid_min_coverage: float = Field(0.3, ge=0, le=1, validation_alias=_env("RAGSTORE_HYBRID_MIN_COVERAGE"))
    hybrid_candidates: int = Field(100, ge=1, le=1000, validation_alias=_env("RAGSTORE_HYBRID_CANDIDATES"))
    # hybrid fusion (search/bridge_fusion.py): bridge adds the companion embedding and cross-language terms; rrf: ranks
    hybrid_fusion: Literal["bridge", "rrf"] = Field("bridge", validation_alias=_env("RAGSTORE_HYBRID_FUSION"))
    # The cross-lingual embedding of chunks and terms (documents/companion.py) the bridge fusion scores with
    companion_model: Literal["use-multilingual-v3", "none"] = Field(
        "use-multilingual-v3", validation_alias=_env("RAGSTORE_COMPANION_MODEL")
    )
    lexical_pg_rerank: Literal["bm25", "none"] = Field("bm25", validation_alias=_env("RAGSTORE_LEXICAL_PG_RERANK"))
    # lexical/memory.py: in-memory BM25 MB per process (past it: FTS5 / tsvector); 0: off; unset: lexical/budget.py
    lexical_memory_mb: int | None = Field(None, ge=0, le=1_000_000, validation_alias=_env("RAGSTORE_LEXICAL_MEMORY_MB"))
    query_log: bool = Field(True, validation_alias=_env("RAGSTORE_QUERY_LOG"))
    query_log_retain_days: int = Field(30, ge=1, le=3650, validation_alias=_env("RAGSTORE_QUERY_LOG_RETAIN_DAYS"))

    # consistency checker: a daily run in the server (a crontab line; empty turns it off, e.g. for cron users)
    check_schedule: str = Field("30 4 * * *", validation_alias=_env("RAGSTORE_CHECK_SCHEDULE"))
    # health history (issue #20): a snapshot of every component in system_health (a crontab line; empty: off)
    health_snapshot_schedule: str = Field("* * * * *", validation_alias=_env("RAGSTORE_HEALTH_SNAPSHOT_SCHEDULE"))
    health_retention_days: int = Field(14, ge=1, le=3650, validation_alias=_env("RAGSTORE_HEALTH_RETENTION_DAYS"))
    cleanup_schedule: str = Field("17 2 * * *", validation_alias=_env("RAGSTORE_CLEANUP_SCHEDULE"))  # maintenance
    optimize_schedule: str = Field("37 3 * * 0", validation_alias=_env("RAGSTORE_OPTIMIZE_SCHEDULE"))  # weekly
    # alerts without Prometheus: a JSON message (Slack-compatible `text`) when something needs a person
    alert_webhook_url: str = Field(
        "", max_length=2000, pattern=r"^(https?://[^/\s]+\S*)?$", validation_alias=_env("RAGSTORE_ALERT_WEBHOOK_URL")
    )
    alert_disk_free_ratio: float = Field(0.1, ge=0, le=1, validation_alias=_env("RAGSTORE_ALERT_DISK_FREE_RATIO"))

    check_repair: bool = Field(True, validation_alias=_env("RAGSTORE_CHECK_REPAIR"))
    check_stuck_after_s: float = Field(
        900.0, gt=0, le=30 * 86_400, validation_alias=_env("RAGSTORE_CHECK_STUCK_AFTER_S")
    )

    # backups: a repository path, compression, encryption, block size, schedules (crontab lines; empty = off)
    backup_repository: str | None = Field(None, validation_alias=_env("RAGSTORE_BACKUP_REPOSITORY"))
    backup_compression: Literal["zstd", "gzip", "none"] = Field(
        "zstd", validation_alias=_env("RAGSTORE_BACKUP_COMPRESSION")
    )
    backup_compression_level: int = Field(1, ge=1, le=19, validation_alias=_env("RAGSTORE_BACKUP_COMPRESSION_LEVEL"))
    backup_encryption_key: SecretStr | None = Field(None, validation_alias=_env("BACKUP_ENCRYPTION_KEY"))
    backup_block_kb: int = Field(4, ge=4, le=1024, multiple_of=4, validation_alias=_env("RAGSTORE_BACKUP_BLOCK_KB"))
    backup_threads: int = Field(3, ge=1, le=64, validation_alias=_env("RAGSTORE_BACKUP_THREADS"))
    backup_staging_dir: str | None = Field(None, validation_alias=_env("RAGSTORE_BACKUP_STAGING_DIR"))
    backup_schedule_full: str = Field("0 3 * * *", validation_alias=_env("RAGSTORE_BACKUP_SCHEDULE_FULL"))
    backup_schedule_incremental: str = Field("0 * * * *", validation_alias=_env("RAGSTORE_BACKUP_SCHEDULE_INCREMENTAL"))
    backup_verify_scheduled: bool = Field(True, validation_alias=_env("RAGSTORE_BACKUP_VERIFY_SCHEDULED"))
    backup_keep_hourly: int = Field(24, ge=0, le=10_000, validation_alias=_env("RAGSTORE_BACKUP_KEEP_HOURLY"))
    backup_keep_daily: int = Field(7, ge=0, le=10_000, validation_alias=_env("RAGSTORE_BACKUP_KEEP_DAILY"))
    backup_keep_weekly: int = Field(4, ge=0, le=10_000, validation_alias=_env("RAGSTORE_BACKUP_KEEP_WEEKLY"))
    backup_keep_monthly: int = Field(6, ge=0, le=10_000, validation_alias=_env("RAGSTORE_BACKUP_KEEP_MONTHLY"))

    # Restores through the API (POST /admin/backup/restore) go only below this folder (default: <data dir>/restores)
    restore_root: Path | None = Field(None, validation_alias=_env("RAGSTORE_RESTORE_ROOT"))

    @field_validator("restore_root", mode="before")
    @classmethod
    def _empty_restore_root(cls, value: Any) -> Any:
        """`RAGSTORE_RESTORE_ROOT=` (as in .env.example) is the default, not the working directory."""
        return None if isinstance(value, str) and not value.strip() else value

    # HTTP server
    api_host: str = Field("127.0.0.1", validation_alias=_env("RAGSTORE_API_HOST"))
    api_port: int = Field(8000, ge=1, le=65535, validation_alias=_env("RAGSTORE_API_PORT"))
    api_workers: int = Field(1, ge=1, le=64, validation_alias=_env("RAGSTORE_API_WORKERS"))
    api_access_log: bool = Field(False, validation_alias=_env("RAGSTORE_API_ACCESS_LOG"))

    # large ingests: a request with more documents (or a larger body) than this becomes a job, answered 202
    ingest_job_documents: int = Field(1000, ge=1, le=10_000_000, validation_alias=_env("RAGSTORE_INGEST_JOB_DOCUMENTS"))
    ingest_job_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=2 * 1024**3, validation_alias=_env("RAGSTORE_INGEST_JOB_BYTES")
    )
    # folders (comma-separated) where `POST /v1/collections/{name}/sync` may read server files; empty: 403
    sync_roots: str = Field("", validation_alias=_env("RAGSTORE_SYNC_ROOTS"))

    # request limits and cross-site protection (api/limits.py, api/origin.py): every body is counted as it
    # streams in and refused with 413 past its route's limit; document uploads take RAGSTORE_MAX_DOCUMENT_BYTES
    max_json_body_bytes: int = Field(
        1024 * 1024, ge=1024, le=1024**3, validation_alias=_env("RAGSTORE_MAX_JSON_BODY_BYTES")
    )
    max_search_body_bytes: int = Field(
        512 * 1024, ge=1024, le=1024**3, validation_alias=_env("RAGSTORE_MAX_SEARCH_BODY_BYTES")
    )
    max_json_depth: int = Field(64, ge=2, le=500, validation_alias=_env("RAGSTORE_MAX_JSON_DEPTH"))
    # a longer query is cut to this many (estimated) tokens before it is embedded and analysed (at most the model's)
    query_max_tokens: int = Field(64, ge=8, le=8192, validation_alias=_env("RAGSTORE_QUERY_MAX_TOKENS"))
    # Host names served (commas, "*": any); empty: localhost, 127.0.0.1, ::1, RAGSTORE_API_HOST unless 0.0.0.0 or ::
    allowed_hosts: str = Field("", validation_alias=_env("RAGSTORE_ALLOWED_HOSTS"))
    # Origins a browser page may call the API from (comma-separated); empty turns CORS off
    cors_origins: str = Field("", validation_alias=_env("RAGSTORE_CORS_ORIGINS"))

    # what one file may cost to read (text/limits.py): pages of a PDF, nesting of an HTML page, characters
    # of extracted text, and wall-clock seconds; a file over any of them is refused (4xx), nothing stored
    max_pdf_pages: int = Field(5_000, ge=1, le=1_000_000, validation_alias=_env("RAGSTORE_MAX_PDF_PAGES"))
    max_html_depth: int = Field(512, ge=8, le=100_000, validation_alias=_env("RAGSTORE_MAX_HTML_DEPTH"))
    max_extracted_chars: int = Field(
        25_000_000, ge=1_000, le=2 * 1024**3, validation_alias=_env("RAGSTORE_MAX_EXTRACTED_CHARS")
    )
    load_timeout_s: float = Field(120.0, gt=0, le=86_400, validation_alias=_env("RAGSTORE_LOAD_TIMEOUT_S"))

    # who may do what (issue 16, security/): every HTTP call carries a key or a session unless RAGSTORE_AUTH=off,
    # which is refused unless the server binds to a loopback address
    auth: Literal["required", "off"] = Field("required", validation_alias=_env("RAGSTORE_AUTH"))
    # The server-side secrets. Unset in the local and test profiles, each is generated once into
    # <data dir>/secrets/ (mode 0600, security/local_secrets.py); the production profile refuses to start
    # without them, because several servers must share them and a backup must not be their only copy.
    api_key_salt: SecretStr | None = Field(None, validation_alias=_env("API_KEY_SALT"))  # HMAC pepper of key secrets
    jwt_secret: SecretStr | None = Field(None, validation_alias=_env("JWT_SECRET"))
    audit_signing_key: SecretStr | None = Field(None, validation_alias=_env("AUDIT_SIGNING_KEY"))  # Ed25519 seed
    encryption_key: SecretStr | None = Field(None, validation_alias=_env("ENCRYPTION_KEY"))  # AES-256-GCM
    # the key ENCRYPTION_KEY replaces, still accepted for reading while `ragstore secrets rotate` runs
    encryption_key_previous: SecretStr | None = Field(None, validation_alias=_env("ENCRYPTION_KEY_PREVIOUS"))
    access_token_ttl_s: int = Field(900, ge=30, le=86_400, validation_alias=_env("RAGSTORE_ACCESS_TOKEN_TTL_S"))
    refresh_token_ttl_s: int = Field(
        14 * 86_400, ge=60, le=365 * 86_400, validation_alias=_env("RAGSTORE_REFRESH_TOKEN_TTL_S")
    )
    key_rotation_grace_s: int = Field(
        86_400, ge=0, le=90 * 86_400, validation_alias=_env("RAGSTORE_KEY_ROTATION_GRACE_S")
    )
    # users and sessions (issue 16, security/users.py): how long an admin page login (its cookie) lasts
    admin_session_ttl_s: int = Field(
        8 * 3600, ge=60, le=30 * 86_400, validation_alias=_env("RAGSTORE_ADMIN_SESSION_TTL_S")
    )
    # a signed checkpoint of the audit chain this often (crontab line), written even when nothing happened
    audit_checkpoint_schedule: str = Field("0 * * * *", validation_alias=_env("RAGSTORE_AUDIT_CHECKPOINT_SCHEDULE"))

    # rate limits (the `limits` library; Redis when REDIS_URL is set) and usage accounting
    rate_limit_default: str = Field("600/minute", validation_alias=_env("RAGSTORE_RATE_LIMIT_DEFAULT"))
    # per-role overrides, e.g. "read=1200/minute;admin=6000/minute"; a key's own limit overrides both
    rate_limit_roles: str = Field("", validation_alias=_env("RAGSTORE_RATE_LIMIT_ROLES"))
    rate_limit_login: str = Field("10/minute", validation_alias=_env("RAGSTORE_RATE_LIMIT_LOGIN"))
    rate_limit_anonymous: str = Field("60/minute", validation_alias=_env("RAGSTORE_RATE_LIMIT_ANONYMOUS"))
    max_concurrent_requests: int = Field(16, ge=1, le=10_000, validation_alias=_env("MAX_CONCURRENT_REQUESTS"))
    usage_retain_days: int = Field(90, ge=1, le=3650, validation_alias=_env("RAGSTORE_USAGE_RETAIN_DAYS"))
    # Chat retention (issue 18): the daily purge removes soft-deleted and expired conversations, and with a
    # number of days > 0 also conversations idle (no message, no change) that long; 0 keeps idle ones.
    chat_retention_days: int = Field(0, ge=0, le=36_500, validation_alias=_env("RAGSTORE_CHAT_RETENTION_DAYS"))

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_size_tokens:
            raise ValueError(
                "RAGSTORE_CHUNK_OVERLAP_TOKENS must be smaller than RAGSTORE_CHUNK_SIZE_TOKENS "
                f"({self.chunk_overlap_tokens} >= {self.chunk_size_tokens})"
            )
        if self.embedding_backend == "openai" and self.openai_api_key is None:
            raise ValueError("OPENAI_API_KEY is required when RAGSTORE_EMBEDDING_BACKEND=openai")
        if self.database_url is not None and not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError(
                f"DATABASE_URL must start with sqlite:// or postgresql+psycopg:// (got {self.database_url!r})"
            )
        if self.chroma_url is not None and not self.chroma_url.startswith(("http://", "https://")):
            raise ValueError(f"CHROMA_URL must start with http:// or https:// (got {self.chroma_url!r})")
        if self.milvus_uri.startswith(("tcp://", "grpc://")):
            raise ValueError(f"RAGSTORE_MILVUS_URI must be a path or http(s)://host:port (got {self.milvus_uri!r})")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"REDIS_URL must start with redis://, rediss:// or unix:// (got {self.redis_url!r})")
        for variable, line in (
            ("RAGSTORE_CHECK_SCHEDULE", self.check_schedule),
            ("RAGSTORE_HEALTH_SNAPSHOT_SCHEDULE", self.health_snapshot_schedule),
            ("RAGSTORE_CLEANUP_SCHEDULE", self.cleanup_schedule),
            ("RAGSTORE_OPTIMIZE_SCHEDULE", self.optimize_schedule),
            ("RAGSTORE_BACKUP_SCHEDULE_FULL", self.backup_schedule_full),
            ("RAGSTORE_BACKUP_SCHEDULE_INCREMENTAL", self.backup_schedule_incremental),
            ("RAGSTORE_AUDIT_CHECKPOINT_SCHEDULE", self.audit_checkpoint_schedule),
        ):
            _check_crontab(variable, line)
        for variable, limit in (
            ("RAGSTORE_RATE_LIMIT_DEFAULT", self.rate_limit_default),
            ("RAGSTORE_RATE_LIMIT_LOGIN", self.rate_limit_login),
            ("RAGSTORE_RATE_LIMIT_ANONYMOUS", self.rate_limit_anonymous),
        ):
            if not RATE_LIMIT.fullmatch(limit):
                raise ValueError(f"{variable}={limit!r} is not a rate limit: write it like 600/minute or 10 per second")
        parse_role_limits(self.rate_limit_roles)
        if self.backup_encryption_key is not None and self.backup_encryption_key.get_secret_value():
            decode_key(self.backup_encryption_key.get_secret_value())  # a ValueError naming the variable
        if self.env == "production":
            missing = [
                variable
                for variable, value in (
                    ("API_KEY_SALT", self.api_key_salt),
                    ("JWT_SECRET", self.jwt_secret),
                    ("AUDIT_SIGNING_KEY", self.audit_signing_key),
                    ("ENCRYPTION_KEY", self.encryption_key),
                )
                if value is None or not value.get_secret_value()
            ]
            if missing:
                raise ValueError(
                    f"RAGSTORE_ENV=production needs {', '.join(missing)} set (make them with `ragstore secrets keygen`)"
                )
        # Which backend names exist is the vector registry's knowledge, above this module: it checks
        # RAGSTORE_VECTOR_BACKEND when settings become an index (vectors.registry.checked_spec).
        return self

    @model_validator(mode="after")
    def _register_secrets(self) -> Settings:
        """Tell the masking (secrets_mask) what this process must never show: every secret setting and every
        password inside a URL setting. Done where settings are built, so no process can hold a secret that
        its errors and logs would not hide."""
        register(*self.secret_values())
        install_log_masking()
        return self

    def secret_values(self) -> list[str]:
        values = [v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)]
        urls = (self.database_url, self.redis_url, self.chroma_url, self.openai_base_url, self.milvus_uri)
        values += [p for p in (url_password(u) for u in urls) if p]
        return [v for v in values if v]

    def make_data_dir(self) -> None:
        """Create RAGSTORE_DATA_DIR if it is missing; a ConfigError naming it when it is a file or cannot be made."""
        path = self.data_dir
        if path.exists() and not path.is_dir():
            raise ConfigError(f"RAGSTORE_DATA_DIR: {path} is a file, not a folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"RAGSTORE_DATA_DIR: cannot create {path}: {exc.strerror or exc}") from exc

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ragstore.db').resolve()}"

    @property
    def backup_location(self) -> str:
        return self.backup_repository or str((self.data_dir / "backups").resolve())

    @property
    def backup_staging(self) -> Path:
        return Path(self.backup_staging_dir) if self.backup_staging_dir else self.data_dir / ".backup-staging"

    @property
    def restore_root_dir(self) -> Path:
        """Where API restores may go: RAGSTORE_RESTORE_ROOT, else `<data dir>/restores`."""
        return self.restore_root or self.data_dir / "restores"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def milvus_location(self) -> str:
        return self.milvus_uri or str((self.data_dir / "milvus.db").resolve())

    @property
    def chroma_location(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    def masked(self) -> dict[str, Any]:
        """Every setting keyed by its environment variable, secrets masked, for `config show`."""
        shown: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            alias = field.validation_alias
            key = alias.choices[0] if isinstance(alias, AliasChoices) else name.upper()
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "**********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                value = mask(str(value))
            elif isinstance(value, str):
                value = mask(value)  # a password inside any URL (DATABASE_URL, REDIS_URL, CHROMA_URL, ...)
            shown[str(key)] = value
        shown["DATABASE_URL (effective)"] = mask(self.sqlalchemy_url)
        return shown


def _check_crontab(variable: str, line: str) -> None:
    if not line.strip():
        return
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(line)
    except ValueError as exc:
        raise ValueError(f"{variable} must be a crontab line like '30 4 * * *' or empty (got {line!r}: {exc})") from exc


def _shown_input(loc: tuple[Any, ...], value: Any) -> str:
    """A wrong value as an error message may echo it: never a secret setting's, and no password in a URL."""
    field = Settings.model_fields.get(str(loc[0])) if loc else None
    if field is not None and field.annotation in (SecretStr, SecretStr | None):
        return "a value that is not shown"
    return mask(repr(value))


def _field_env_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "configuration"
    name = str(loc[0])
    field = Settings.model_fields.get(name)
    if field is not None and isinstance(field.validation_alias, AliasChoices):
        return str(field.validation_alias.choices[0])
    return name.upper()


def load_settings(env_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from the environment and `.env` / `.env.{profile}` files in `env_dir` (default cwd).

    The profile is RAGSTORE_ENV from the environment, else from `.env`, else `local`. Raises ConfigError
    naming every wrong variable.
    """
    base = env_dir or Path.cwd()
    plain = base / ".env"
    profile = os.environ.get("RAGSTORE_ENV") or overrides.get("env")
    if profile is None and plain.is_file():
        profile = dotenv_values(plain).get("RAGSTORE_ENV")
    profile = profile or "local"
    if profile not in PROFILES:
        raise ConfigError(f"RAGSTORE_ENV: must be one of {', '.join(PROFILES)} (got {profile!r})")
    files = tuple(str(p) for p in (plain, base / f".env.{profile}") if p.is_file())
    try:
        return Settings(_env_file=files or None, **overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = mask(str(err["msg"]).removeprefix("Value error, "))
            if err["loc"]:
                problems.append(
                    f"{_field_env_name(err['loc'])}: {msg} (got {_shown_input(err['loc'], err.get('input'))})"
                )
            else:
                problems.append(msg)
        raise ConfigError("invalid configuration: " + "; ".join(problems), details={"problems": problems}) from exc
