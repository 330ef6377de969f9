"""Building a store's components from `Settings`: the one place that knows how the parts fit together.

Features never construct each other; they receive what they use here, so each package can be read, tested
and replaced on its own, and `service.py` only hands the finished sub-facades out.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select

from ragstore.analytics.recorder import QueryRecorder
from ragstore.analytics.service import AnalyticsService
from ragstore.backup.manager import BackupManager
from ragstore.backup.service import BackupService, RestoreFn
from ragstore.cache.bus import EventBus
from ragstore.cache.layers import CacheLayers
from ragstore.cache.versions import CollectionVersions
from ragstore.chat.relex import MessageRelexer
from ragstore.chat.retention import ChatRetention
from ragstore.chat.search import MessageSearch
from ragstore.chat.service import ChatService
from ragstore.chat.tokens import token_counter
from ragstore.clock import SYSTEM_CLOCK, Clock
from ragstore.config import Settings
from ragstore.consistency.checker import ConsistencyChecker, vector_drift
from ragstore.consistency.repair import Repairer
from ragstore.consistency.reports import ReportStore
from ragstore.consistency.service import ConsistencyService
from ragstore.db.engine import Database
from ragstore.db.identity import store_identity
from ragstore.db.models import EmbeddingUsage
from ragstore.db.security_models import ApiKey
from ragstore.db.state import read_state, write_state
from ragstore.documents.catalog import Catalog
from ragstore.documents.companion import Companion
from ragstore.documents.ingest import Ingestor
from ragstore.documents.service import CollectionService, DocumentService
from ragstore.embeddings.accounting import charge
from ragstore.embeddings.base import Embedder, UsageRecord
from ragstore.embeddings.batching import QueryBatcher
from ragstore.embeddings.local import LocalEmbedder
from ragstore.errors import ConfigError
from ragstore.indexing.service import IndexService
from ragstore.indexing.tuning import IndexTuner
from ragstore.lexical.base import LexicalIndex
from ragstore.lexical.factory import create_lexical_index
from ragstore.lexical.indexer import LexicalIndexer
from ragstore.ops.health import OpsService
from ragstore.ops.queues import QueueActions
from ragstore.records.service import RecordsService
from ragstore.search.bridge_fusion import BridgeScorer
from ragstore.search.dense import DenseSearcher
from ragstore.search.hybrid import SearchEngine
from ragstore.search.service import SearchService
from ragstore.search.term_bridge import TermBridge
from ragstore.security.audit import AuditTrail
from ragstore.security.audit_service import AuditService
from ragstore.security.checkpoints import Checkpoints, signer_from_settings
from ragstore.security.keys import KeyService
from ragstore.security.ratelimit import RateLimiter
from ragstore.security.usage import UsageService, UsageWriter
from ragstore.security.users import UserService
from ragstore.security.vault import SecretVault
from ragstore.sync.applier import OutboxApplier
from ragstore.sync.changes import ChangeFeed
from ragstore.sync.job_service import JobService
from ragstore.sync.jobs import JobQueue
from ragstore.sync.outbox import queue_operation
from ragstore.text.limits import LoadLimits
from ragstore.vectors.base import VectorIndex
from ragstore.vectors.migration import BACKEND_KEY
from ragstore.vectors.registry import backend_spec

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from ragstore.cache.redis import RedisConnection

__all__ = ["Components", "SubFacades", "active_backend", "build", "record_usage"]

log = logging.getLogger(__name__)
F = TypeVar("F", bound="DataclassInstance")


@dataclass(slots=True)
class Components:
    """The parts of an open store, for the sub-facades, the runtime drivers and tests that look inside."""

    # What the store was opened with.
    settings: Settings
    db: Database
    vectors: VectorIndex
    embedder: Embedder
    # Documents and their analysis.
    catalog: Catalog
    ingestor: Ingestor
    lexical_indexer: LexicalIndexer
    # The outbox between SQL and the vector index.
    applier: OutboxApplier
    changes: ChangeFeed
    # Search.
    lexical: LexicalIndex
    searcher: DenseSearcher
    engine: SearchEngine
    term_bridge: TermBridge | None  # the bridge fusion's query expansion (None: RAGSTORE_COMPANION_MODEL=none)
    recorder: QueryRecorder
    query_batcher: QueryBatcher
    # Jobs, events and caches.
    jobs: JobQueue
    redis: RedisConnection | None
    bus: EventBus | None
    cache: CacheLayers
    versions: CollectionVersions
    # Consistency and backups.
    checker: ConsistencyChecker
    reports: ReportStore
    backup_manager: BackupManager
    stopping: threading.Event  # set when the store shuts down: in-flight loads and ingests stop (text/limits.py)
    # Identity and accounting (issue 16).
    audit_trail: AuditTrail
    usage_writer: UsageWriter  # usage rows, queued by the API's metering middleware and written in batches
    rate_limiter: RateLimiter  # the server's rate limits (security/ratelimit.py); `limits` loads on first use
    audit_checkpoints: Checkpoints


@dataclass(slots=True)
class SubFacades:
    collections: CollectionService
    documents: DocumentService
    search: SearchService
    analytics: AnalyticsService
    index: IndexService
    consistency: ConsistencyService
    backups: BackupService
    jobs: JobService
    ops: OpsService
    usage: UsageService
    secrets: SecretVault  # issue 16: user secrets at rest (security/vault.py)
    users: UserService
    keys: KeyService
    audit: AuditService
    chat: ChatService  # issue 18: conversations, messages, feedback, context, message search, retention
    records: RecordsService  # issue 18: the application records (declarations/record_types.py declares them)
    queues: QueueActions  # issue 20: the outbox's and the job queue's dead letters, retried by an operator


def build(
    settings: Settings,
    db: Database,
    vectors: VectorIndex,
    embedder: Embedder,
    restore: RestoreFn,
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[Components, SubFacades]:
    """Every component of one store, and the sub-facades over them (nothing is started here).

    One `clock` for every part that dates or times something, so a test that moves it moves the whole store.
    """
    lexical_indexer = LexicalIndexer(db, settings.lexical_analyzer)
    audit_trail = AuditTrail(db, clock=clock)
    audit_checkpoints = Checkpoints(db, lambda: signer_from_settings(settings), clock=clock)
    catalog = Catalog(db, on_create=lexical_indexer.register, clock=clock, audit=audit_trail)
    applier = OutboxApplier(
        db,
        vectors,
        max_attempts=settings.sync_max_attempts,
        backoff_base_s=settings.sync_backoff_base_s,
        backoff_max_s=settings.sync_backoff_max_s,
        lease_s=settings.sync_lease_s,
        retain_s=settings.sync_retain_s,
        clock=clock,
    )
    redis = _open_redis(settings, clock)
    store_id = f"{store_identity(db):x}"
    bus = EventBus(redis, namespace=settings.cache_namespace, store=store_id) if redis is not None else None
    versions = CollectionVersions(catalog.write_version, bus, local_reads=db.is_sqlite, clock=clock)
    searcher = DenseSearcher(db, vectors)
    lexical = create_lexical_index(settings, db)
    stopping = threading.Event()
    # The weights load on first use, not here (embeddings/local.py).
    companion = Companion(db, LocalEmbedder(settings.companion_model)) if settings.companion_model != "none" else None
    c = Components(
        settings=settings,
        db=db,
        vectors=vectors,
        embedder=embedder,
        catalog=catalog,
        ingestor=Ingestor(
            db,
            catalog,
            embedder,
            lexical_indexer,
            max_tokens=settings.chunk_size_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
            clock=clock,
            stopping=stopping,
            companion=companion,
        ),
        lexical_indexer=lexical_indexer,
        applier=applier,
        changes=ChangeFeed(applier, versions, bus),
        lexical=lexical,
        searcher=searcher,
        engine=SearchEngine(
            db, searcher, lexical, candidates=settings.hybrid_candidates, bridge=BridgeScorer(db, companion)
        ),
        term_bridge=TermBridge(db, companion, frequencies=lexical.document_frequencies)
        if companion is not None
        else None,
        recorder=QueryRecorder(db, enabled=settings.query_log, retain_days=settings.query_log_retain_days),
        query_batcher=QueryBatcher(embedder),
        jobs=JobQueue(db, lease_s=settings.sync_lease_s, clock=clock),
        redis=redis,
        bus=bus,
        cache=CacheLayers(
            max_entries=settings.cache_max_entries,
            embedding_ttl_s=settings.embedding_cache_ttl_s,
            search_ttl_s=settings.search_cache_ttl_s,
            session_ttl_s=settings.session_cache_ttl_s,
            redis=redis,
            namespace=settings.cache_namespace,
            store=store_id,
            clock=clock,
        ),
        versions=versions,
        checker=ConsistencyChecker(db, vectors, stuck_after_s=settings.check_stuck_after_s),
        reports=ReportStore(db),
        backup_manager=BackupManager(
            settings,
            db,
            vector_backend=lambda: settings.vector_backend,  # the backend active_backend settled on
            persist_index=applier.persist,
            collection_ids=lambda: [ref.id for ref in catalog.active_refs()],
            audit=audit_trail,
            checkpoints=audit_checkpoints,
        ),
        stopping=stopping,
        usage_writer=UsageWriter(db),
        rate_limiter=RateLimiter(settings, key_limit=_key_limit_reader(db), clock=clock),
        audit_trail=audit_trail,
        audit_checkpoints=audit_checkpoints,
    )
    keys = KeyService(settings, db, c.audit_trail, clock=clock)
    # Each sub-facade takes the components its fields are named after; listed here is only what is not one.
    facades = SubFacades(
        collections=_wired(CollectionService, c),
        documents=_wired(
            DocumentService,
            c,
            max_document_bytes=settings.max_document_bytes,
            limits=LoadLimits(
                max_pages=settings.max_pdf_pages,
                max_depth=settings.max_html_depth,
                max_chars=settings.max_extracted_chars,
                timeout_s=settings.load_timeout_s,
                chunk_tokens=settings.chunk_size_tokens,
            ),
            clock=clock,
        ),
        search=_wired(SearchService, c),
        analytics=_wired(AnalyticsService, c, collection_id=lambda name: catalog.resolve(name).id),
        index=_wired(
            IndexService,
            c,
            reembed_chunks=c.ingestor.reembed,
            drift=vector_drift(db),
            tuner=IndexTuner(
                db,
                vectors,
                backend=settings.vector_backend,
                target=settings.target_recall,
                default_ef=settings.hnsw_expansion_search,
                clock=clock,
                should_stop=stopping.is_set,
            ),
        ),
        consistency=_wired(
            ConsistencyService,
            c,
            repairer=Repairer(
                db,
                queue=lambda s, cid, kind, ids: queue_operation(s, cid, kind, ids, now=clock.now()),
                apply=lambda: _apply_repairs(applier),
                retry_dead=applier.retry_dead,
            ),
            backend=lambda: vectors.name,
            persist=applier.persist,
        ),
        backups=BackupService(manager=c.backup_manager, restore=restore),
        jobs=JobService(queue=c.jobs, bus=bus),
        ops=_wired(OpsService, c, clock=clock),
        usage=_wired(UsageService, c, clock=clock, retain_days=settings.usage_retain_days),
        secrets=SecretVault(settings, db, c.audit_trail, clock=clock),
        users=UserService(db=db, settings=settings, audit_trail=c.audit_trail, clock=clock),
        keys=keys,
        audit=_wired(AuditService, c),
        chat=ChatService(
            db=db,
            cache=c.cache,
            audit_trail=c.audit_trail,
            searcher=MessageSearch(db, analyzer=lexical_indexer.target),
            retention=ChatRetention(db, c.audit_trail, clock=clock, forget_key=keys.forget),
            relexer=MessageRelexer(db, lexical_indexer.target),
            clock=clock,
            analyze=lambda text: lexical_indexer.target().terms(text),
            count_tokens=token_counter(embedder),
        ),
        records=RecordsService(
            db, c.audit_trail, SecretVault(settings, db, c.audit_trail, clock=clock), c.cache.stats, clock=clock
        ),
        queues=_wired(QueueActions, c, clock=clock),
    )
    return c, facades


def _wired(facade: type[F], c: Components, **given: Any) -> F:
    """A sub-facade whose every field not `given` is the component of that name.

    The sub-facades name their fields after the components on purpose, so that wiring one lists only what
    is not a plain component (a setting, a callback) rather than `catalog=catalog` for every part; a field
    named after no component fails here, when the first store opens.
    """
    taken = {f.name: getattr(c, f.name) for f in dataclasses.fields(facade) if f.init and f.name not in given}
    return facade(**taken, **given)


def _key_limit_reader(db: Database) -> Callable[[int], str | None]:
    """How the rate limiter reads a key's own limit (`api_keys.rate_limit`; None: the role's applies)."""

    def read(key_id: int) -> str | None:
        with db.read() as s:
            value = s.scalar(select(ApiKey.rate_limit).where(ApiKey.id == key_id))
        return None if value is None else str(value)

    return read


def _apply_repairs(applier: OutboxApplier) -> tuple[int, int]:
    stats = applier.apply_pending(ignore_schedule=True)
    return stats.applied, stats.failed


def active_backend(db: Database, settings: Settings) -> Settings:
    """The settings with the vector backend the store's vectors live in (recorded in `store_state`).

    A new store records the configured backend. After `ragstore index migrate` the recorded one wins when
    RAGSTORE_VECTOR_BACKEND is not set; a setting that names another backend is refused, since a store
    opened on the wrong backend would see none of its vectors (the in-memory test backend excepted: it is
    rebuilt from SQL on every open).
    """
    recorded = read_state(db, BACKEND_KEY)
    if recorded is None:
        if backend_spec(settings.vector_backend).persistent:
            write_state(db, BACKEND_KEY, {"backend": settings.vector_backend})
        return settings
    backend = str(recorded.get("backend"))
    if backend == settings.vector_backend or not backend_spec(settings.vector_backend).persistent:
        return settings
    if "vector_backend" in settings.model_fields_set:
        raise ConfigError(
            f"RAGSTORE_VECTOR_BACKEND={settings.vector_backend}, but this store's vectors are in {backend} "
            f"(switched by `ragstore index migrate`): set it to {backend}, unset it, or move the vectors with "
            f"`ragstore index migrate --to {settings.vector_backend}`"
        )
    return settings.model_copy(update={"vector_backend": backend})


def _open_redis(settings: Settings, clock: Clock) -> RedisConnection | None:
    """The Redis connection pool when REDIS_URL is set (redis-py is the `redis` extra, imported only then)."""
    if not settings.redis_url:
        return None
    try:
        from ragstore.cache.redis import RedisConnection
    except ImportError as exc:
        raise ConfigError(
            "REDIS_URL is set, but the redis package is not installed: pip install 'ragstore[redis]'"
        ) from exc
    return RedisConnection(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout_s=settings.redis_timeout_s,
        retry_after_s=settings.redis_retry_after_s,
        clock=clock,
    )


def record_usage(db: Database, record: UsageRecord) -> None:
    """Store what a paid embedding call cost, and charge it to the request in progress (the usage log);
    a failure to record never fails the call itself."""
    charge(record)
    if record.backend == "local":
        return  # free and frequent: not worth a row per call
    try:
        db.write(lambda s: s.add(EmbeddingUsage(**dataclasses.asdict(record))))  # a row holds every field
    except Exception:
        log.exception("could not record embedding usage %s", record)
