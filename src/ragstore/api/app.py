"""The application factory. The app owns one RagStore for its lifetime and its sync worker thread."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match

from ragstore import __version__
from ragstore.api.admin_ui import install_admin_ui
from ragstore.api.auth import AuthenticationMiddleware, PrincipalLookup
from ragstore.api.errors import install_error_handlers
from ragstore.api.fast_search import CachedSearchMiddleware
from ragstore.api.job_threads import stop_job_runners
from ragstore.api.limits import BodyLimits, RequestGuardMiddleware, document_guard_responses
from ragstore.api.metering import MeteringMiddleware
from ragstore.api.origin import WRITE_HEADER, allowed_hosts
from ragstore.api.permissions import document_access
from ragstore.api.routers import (
    admin,
    admin_login,
    audit,
    auth,
    backup,
    chat_retention,
    collections,
    conversations,
    docs_pages,
    document_sets,
    documents,
    health,
    jobs,
    keys,
    message_search,
    metrics,
    records,
    search,
    sync,
    usage,
    users,
)
from ragstore.config import Settings, load_settings
from ragstore.records.stats import CACHE_SAMPLE_MINUTES
from ragstore.runtime.malloc_tuning import tune_malloc
from ragstore.runtime.scheduler import CHAT_PURGE_SCHEDULE, USAGE_SCHEDULE, MaintenanceScheduler
from ragstore.service import RagStore

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    store: RagStore | None = None,
    access_token_principal: PrincipalLookup | None = None,
    session_cookie_principal: PrincipalLookup | None = None,
) -> FastAPI:
    """An app over `store` (kept open by the caller) or over a store it opens from `settings`.

    `access_token_principal` and `session_cookie_principal` turn a login's bearer token and the admin page's
    cookie into a principal (api/auth.py); without them only API keys authenticate.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        if owned:
            # Before the store allocates anything large (runtime/malloc_tuning.py); a process of its own.
            tune_malloc((settings or load_settings()).malloc_arena_max)
        app.state.store = store if store is not None else RagStore.open(settings, start_worker=True)
        if owned:
            app.state.store.audit.record_start(app.state.store.settings, version=__version__)
        # Load model weights (the embedder's, the analyzer's) before the first request rather than inside it.
        app.state.store.warm_up()
        if owned:
            app.state.store.prepare_search()  # the term-bridge vocabularies, on a thread of their own
            # Everything built so far (modules, model weights, the index) lives as long as the process: keep
            # it out of the cyclic collector's scans, which otherwise walk it in every full collection.
            gc.collect()
            gc.freeze()
        configured = app.state.store.settings
        maintenance = MaintenanceScheduler(
            app.state.store,
            check_schedule=configured.check_schedule,
            check_repair=configured.check_repair,
            backup_schedules={
                "full": configured.backup_schedule_full,
                "incremental": configured.backup_schedule_incremental,
            },
            verify_backups=configured.backup_verify_scheduled,
            session_cleanup=True,
            index_tuning=True,
            usage_schedule=USAGE_SCHEDULE,
            chat_purge_schedule=CHAT_PURGE_SCHEDULE,
            audit_checkpoint_schedule=configured.audit_checkpoint_schedule,
            cache_sample_minutes=CACHE_SAMPLE_MINUTES,
            health_snapshot_schedule=configured.health_snapshot_schedule,
            maintenance_schedules={"cleanup": configured.cleanup_schedule, "optimize": configured.optimize_schedule},
        )
        if owned:
            maintenance.start()  # a store handed in (tests, embedding) keeps its own schedule
            _stop_work_on_sigterm(app.state.store)
        app.state.maintenance = maintenance
        try:
            yield
        finally:
            maintenance.stop()
            stop_job_runners(app)
            if owned:
                app.state.store.close()

    app = FastAPI(
        title="ragstore",
        version=__version__,
        description="The data layer of a RAG service: collections, documents, chunks, embeddings and search.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc are served from the package, offline (routers/docs_pages.py)
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(CachedSearchMiddleware)
    # Rate limits and usage: inside authentication (they read the principal it sets), outside the
    # cached-search fast path, so cached searches are limited and counted too.
    app.add_middleware(MeteringMiddleware)
    # Who is calling (issue 16): outside the cached-search fast path, which must know the principal too, and
    # inside the request guard, so an oversized or cross-site request is refused before a key is looked up.
    app.add_middleware(
        AuthenticationMiddleware,
        access_token_principal=access_token_principal,
        session_cookie_principal=session_cookie_principal,
    )
    # Bounded requests and no cross-site writes (issue 15), outermost last: the Host and the form of a write
    # are checked before any body is read, and every body is counted before anything parses it.
    limited = store.settings if store is not None else (settings or load_settings())
    origins = [o.strip() for o in limited.cors_origins.split(",") if o.strip()]
    if origins:  # CORS is off unless configured: no foreign page may read an answer or preflight a write
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["content-type", "authorization", "x-api-key", WRITE_HEADER.decode()],
        )
    app.add_middleware(
        RequestGuardMiddleware,
        limits=BodyLimits.from_settings(limited),
        hosts=allowed_hosts(limited),
        takes_post=lambda path: _takes_post(app, path),
    )
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(collections.router)
    app.include_router(documents.router)
    app.include_router(document_sets.router)
    app.include_router(sync.router)
    app.include_router(search.router)
    app.include_router(admin.router)
    app.include_router(backup.router)
    app.include_router(admin_login.router)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(jobs.router)
    app.include_router(usage.router)
    app.include_router(keys.router)
    app.include_router(audit.router)
    # Fixed paths before /v1/conversations/{conversation_id}, so that `search` and `purge` are not read as ids.
    app.include_router(message_search.router)
    app.include_router(chat_retention.router)
    app.include_router(conversations.router)
    app.include_router(conversations.messages_router)
    app.include_router(records.router)  # issue 18: application records
    docs_pages.install_docs_pages(app)
    install_admin_ui(app)  # issue 20: the admin pages, their actions and their assets
    document_guard_responses(app)
    document_access(app)
    return app


def _stop_work_on_sigterm(store: RagStore) -> None:
    """On SIGTERM (or SIGINT), tell in-flight loads and ingests to stop, then let uvicorn's handler run.

    uvicorn waits for requests in flight before the lifespan's shutdown, so `store.close()` there comes too
    late for an upload that would run for minutes: the store is told here, when the signal arrives. Only
    the main thread may set a handler (uvicorn runs the lifespan there; a test client does not).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue  # no Python handler to chain (not under uvicorn): leave the default behaviour alone

        def on_signal(received: int, frame: object, previous: Callable[..., object] = previous) -> None:
            store.begin_shutdown()
            previous(received, frame)

        signal.signal(signum, on_signal)


def _takes_post(app: FastAPI, path: str) -> bool:
    """Whether some route answers POST at `path` (asked only of a POST the write rule would refuse)."""
    scope = {"type": "http", "path": path, "method": "POST", "root_path": ""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)
