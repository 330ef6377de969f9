"""Application records through the facade, on SQLite and PostgreSQL: one CRUD routine over every declared
type, then pagination, filters, concurrency, validation, audit, permissions, secrets and the type-specific
parts (flow history, workflow execution history, AI request summary, cache samples)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from ragstore.config import Settings
from ragstore.db.security_models import AuditLog, EncryptedSecret
from ragstore.declarations.record_spec import RecordType
from ragstore.embeddings.base import UsageRecord
from ragstore.embeddings.fake_openai import FakeOpenAI
from ragstore.errors import Conflict, Forbidden, InvalidInput, NotFound
from ragstore.runtime.scheduler import CACHE_SAMPLE_JOB, MaintenanceScheduler, run_cache_sample
from ragstore.security.context import acting_as
from ragstore.security.principal import Principal, PrincipalKind, Role
from ragstore.service import RagStore
from ragstore.wiring import record_usage
from records_helpers import SAMPLES, WRITABLE, make, spec_of

SECRET = "mcp-token-7f3a9c-이것은비밀"


def key(role: Role) -> Principal:
    return Principal(PrincipalKind.KEY, "9", {"*": role}, key_id=9)


@pytest.mark.parametrize("spec", WRITABLE, ids=lambda s: s.table)
def test_crud_of_every_record_type(store: RagStore, spec: RecordType) -> None:
    records = store.records
    made = make(store, spec.table)
    assert made.version == 1 and made.id >= 1
    assert records.get(spec.table, made.id) == made
    assert [r.id for r in records.list(spec.table).items] == [made.id]
    changed = records.update(spec.table, made.id, {**SAMPLES[spec.table][1], "version": 1})
    assert changed.version == 2
    for name, value in SAMPLES[spec.table][1].items():
        assert getattr(changed, name) == value
    with pytest.raises(Conflict):
        records.update(spec.table, made.id, {**SAMPLES[spec.table][1], "version": 1})
    with pytest.raises(NotFound):
        records.update(spec.table, made.id + 1000, {"version": 1})
    records.delete(spec.table, made.id)
    with pytest.raises(NotFound):
        records.get(spec.table, made.id)
    with pytest.raises(NotFound):
        records.delete(spec.table, made.id)
    with store.db.read() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "record.delete")).one()
    assert entry.target == f"{spec.table}:{made.id}"
    assert entry.details == {"type": spec.table, "id": made.id}


def test_a_store_kept_history_is_read_only(store: RagStore) -> None:
    with pytest.raises(Forbidden):
        store.records.create("flow_versions", {"flow_id": 1, "flow_version": 1})


def test_pagination_by_cursor_and_offset(store: RagStore) -> None:
    ids = [make(store, "guardrails", str(i)).id for i in range(7)]
    seen, cursor = [], None
    while True:
        page = store.records.list("guardrails", limit=3, cursor=cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids
    by_name = store.records.list("guardrails", sort="-name", limit=3, offset=3)
    assert [r.name for r in by_name.items] == ["pii3", "pii2", "pii1"] and by_name.next_offset == 6
    with pytest.raises(InvalidInput, match="cursor"):
        store.records.list("guardrails", sort="name", cursor="3")
    with pytest.raises(InvalidInput, match="cursor"):
        store.records.list("guardrails", cursor="\u00b31")
    with pytest.raises(InvalidInput, match="limit"):
        store.records.list("guardrails", limit=501)


def test_filters_on_main_fields_and_unknown_filters(store: RagStore) -> None:
    make(store, "guardrails", "a", kind="regex")
    b = make(store, "guardrails", "b", kind="llm", enabled=False)
    assert [r.id for r in store.records.list("guardrails", filters={"kind": "llm"}).items] == [b.id]
    assert [r.id for r in store.records.list("guardrails", filters='{"enabled": false}').items] == [b.id]
    with pytest.raises(InvalidInput, match="unknown field 'rules'"):
        store.records.list("guardrails", filters={"rules": {}})
    with pytest.raises(InvalidInput, match="enabled must be a bool"):
        store.records.list("guardrails", filters={"enabled": "yes"})
    with pytest.raises(InvalidInput, match="not JSON"):
        store.records.list("guardrails", filters="{oops")


def test_validation_names_the_field(store: RagStore) -> None:
    with pytest.raises(InvalidInput, match=r"^name: "):
        store.records.create("workflows", {"name": "x" * 201})
    with pytest.raises(InvalidInput, match=r"^transport: "):
        store.records.create("mcp_connections", {"name": "m", "transport": "ftp", "endpoint": "e"})
    with pytest.raises(InvalidInput, match=r"^colour: "):
        store.records.create("guardrails", {"name": "g", "kind": "k", "colour": "red"})
    with pytest.raises(InvalidInput, match=r"^workflow_id: no workflow with id 999"):
        store.records.create("workflow_executions", {"workflow_id": 999})
    with pytest.raises(InvalidInput, match=r"^version: "):
        store.records.update("guardrails", 1, {"enabled": False})
    with pytest.raises(InvalidInput, match=r"^definition: .* bytes of JSON"):
        store.records.create("flows", {"name": "big", "definition": {"x": "y" * 300_000}})
    with pytest.raises(InvalidInput, match=r"^name: contains a NUL"):
        store.records.create("workflows", {"name": "a\x00b"})
    with pytest.raises(InvalidInput, match=r"^definition\.x: "):
        store.records.create("workflows", {"name": "s", "definition": {"x": "\ud800"}})
    with pytest.raises(InvalidInput, match=r"^filter: name: contains a NUL"):
        store.records.list("workflows", filters={"name": "\x00"})
    with pytest.raises(NotFound, match="no record type"):
        store.records.list("nope")
    made = make(store, "guardrails")
    with pytest.raises(InvalidInput, match=r"^kind: may not be null"):
        store.records.update("guardrails", made.id, {"kind": None, "version": 1})
    with pytest.raises(Conflict, match="already exists"):
        make(store, "guardrails")


def test_permissions_read_write_delete(store: RagStore) -> None:
    made = make(store, "workflows")
    with acting_as(key(Role.READ)):
        assert store.records.get("workflows", made.id).id == made.id
        with pytest.raises(Forbidden):
            store.records.create("workflows", {"name": "other"})
        with pytest.raises(Forbidden):
            store.records.update("workflows", made.id, {"version": 1, "active": False})
    with acting_as(key(Role.WRITE)):
        assert store.records.update("workflows", made.id, {"version": 1, "active": False}).version == 2
        with pytest.raises(Forbidden):
            store.records.delete("workflows", made.id)
        with pytest.raises(Forbidden):  # credentials: admin only
            store.records.create("mcp_connections", {"name": "m", "transport": "sse", "endpoint": "e"})
    with acting_as(key(Role.METRICS)), pytest.raises(Forbidden):
        store.records.list("workflows")
    with acting_as(key(Role.ADMIN)):
        store.records.delete("workflows", made.id)


def test_mcp_credentials_are_sealed_and_never_read_back(store: RagStore) -> None:
    made = make(store, "mcp_connections", credentials=SECRET)
    assert made.has_credentials is True
    for read in (
        made,
        store.records.get("mcp_connections", made.id),
        store.records.list("mcp_connections"),
    ):
        assert SECRET not in read.model_dump_json()
        assert 'credentials"' not in read.model_dump_json().replace("has_credentials", "")
    assert store.secrets.get(f"mcp:{made.id}", "credentials") == SECRET
    with store.db.read() as s:
        rows = list(s.scalars(select(EncryptedSecret)))
        assert [r.scope for r in rows] == [f"mcp:{made.id}"] and all(SECRET.encode() not in r.ciphertext for r in rows)
        dumped = s.execute(text("SELECT * FROM mcp_connections")).all()
    assert SECRET not in repr(dumped)
    if store.settings.is_sqlite:
        store.close()
        data = b"".join(p.read_bytes() for p in store.settings.data_dir.glob("*.db*") if p.is_file())
        assert SECRET.encode() not in data
        return
    cleared = store.records.update("mcp_connections", made.id, {"credentials": "", "version": 1})
    assert cleared.has_credentials is False and store.secrets.find(f"mcp:{made.id}", "credentials") is None
    store.records.update("mcp_connections", made.id, {"credentials": SECRET, "version": 2})
    store.records.delete("mcp_connections", made.id)
    assert store.secrets.list(f"mcp:{made.id}") == []


def test_a_flow_keeps_every_version_of_its_definition(store: RagStore) -> None:
    flow = make(store, "flows", definition={"nodes": ["a"]})
    flow = store.records.update("flows", flow.id, {"definition": {"nodes": ["a", "b"]}, "version": 1})
    flow = store.records.update("flows", flow.id, {"description": "no new version", "version": 2})
    assert flow.flow_version == 2 and flow.definition == {"nodes": ["a", "b"]}
    assert store.records.flow_version(flow.id, 1).definition == {"nodes": ["a"]}
    assert store.records.flow_version(flow.id, 2).definition == {"nodes": ["a", "b"]}
    with pytest.raises(NotFound):
        store.records.flow_version(flow.id, 3)
    history = store.records.list("flow_versions", filters={"flow_id": flow.id}, sort="-flow_version")
    assert [v.flow_version for v in history.items] == [2, 1]
    with pytest.raises(InvalidInput, match="flow_version"):
        store.records.create("flows", {"name": "x", "flow_version": 9})
    store.records.delete("flows", flow.id)
    assert store.records.list("flow_versions").items == []  # ON DELETE CASCADE


def test_workflow_execution_history_by_status_and_time(store: RagStore) -> None:
    workflow = make(store, "workflows")
    start = datetime(2026, 12, 1, tzinfo=UTC)
    made: list[Any] = []
    for hour, status in enumerate(["succeeded", "failed", "succeeded", "failed", "running"]):
        made.append(
            store.records.create(
                "workflow_executions",
                {"workflow_id": workflow.id, "status": status, "started_at": start + timedelta(hours=hour)},
            )
        )
    failed = store.records.executions(workflow.id, status="failed")
    assert [e.id for e in failed.items] == [made[3].id, made[1].id]
    window = store.records.executions(workflow.id, since=start + timedelta(hours=1), until=start + timedelta(hours=3))
    assert [e.id for e in window.items] == [made[2].id, made[1].id]
    kst = datetime(2026, 12, 1, 11, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Seoul"))
    assert store.records.executions(workflow.id, since=kst).items == []
    assert made[0].started_at == start
    with pytest.raises(NotFound):
        store.records.executions(workflow.id + 100)
    store.records.delete("workflows", workflow.id)
    assert store.records.list("workflow_executions").items == []


def test_ai_request_stats_are_summarised_with_embedding_usage(store: RagStore) -> None:
    for outcome in ("ok", "ok", "error"):
        make(
            store,
            "ai_request_stats",
            model="gpt-x",
            prompt_tokens=100,
            completion_tokens=20,
            outcome=outcome,
            cost_usd=0.01,
            latency_ms=50.0,
        )
    record_usage(store.db, UsageRecord("openai", "text-embedding-3-small", 4, 120, 0.002, 30.0))
    record_usage(store.db, UsageRecord("openai", "text-embedding-3-small", 2, 80, 0.001, 10.0))
    summary = store.records.ai_summary(7)
    rows = {(r.model, r.kind): r for r in summary.rows}
    llm = rows[("gpt-x", "llm")]
    assert (llm.requests, llm.errors, llm.prompt_tokens, llm.completion_tokens) == (3, 1, 300, 60)
    assert llm.cost_usd == pytest.approx(0.03) and llm.latency_ms_avg == pytest.approx(50.0)
    embedding = rows[("text-embedding-3-small", "embedding")]
    assert (embedding.requests, embedding.prompt_tokens) == (2, 200)
    assert embedding.latency_ms_avg == pytest.approx(20.0) and embedding.day == datetime.now(UTC).date()
    assert summary.totals_by_model == {"gpt-x": 3, "text-embedding-3-small": 2}
    with pytest.raises(InvalidInput, match="days"):
        store.records.ai_summary(0)


def test_cache_metadata_samples_every_layer(store: RagStore) -> None:
    store.collections.create("kb")
    store.documents.add_text("kb", "전세 계약 전에 등기부등본을 확인한다.")
    for _ in range(2):
        store.search("kb", "등기부등본", k=1)
    expected = store.components.cache.stats()
    samples = {s.layer: s for s in store.records.sample_caches()}
    assert set(samples) == set(expected) == {"embeddings", "search", "sessions"}
    for layer, counts in expected.items():
        assert (samples[layer].hits, samples[layer].misses) == (counts["hits"], counts["misses"])
    assert samples["search"].hits >= 1
    assert run_cache_sample(store) == 3  # what the server's scheduler runs every CACHE_SAMPLE_MINUTES
    scheduler = MaintenanceScheduler(store, check_schedule="", check_repair=False, cache_sample_minutes=15)
    assert set(scheduler.jobs) == {CACHE_SAMPLE_JOB}
    assert len(store.records.list("cache_metadata", filters={"layer": "search"}).items) == 2


def test_every_type_is_declared_once_with_its_parent(store: RagStore) -> None:
    assert spec_of("workflow_executions").parent.table == "workflows"  # type: ignore[union-attr]
    assert spec_of("analysis_results").parent.table == "analysis_requests"  # type: ignore[union-attr]
    assert {s.table for s in store.records.types()} >= set(SAMPLES)


def test_a_real_embedding_call_shows_in_the_summary(make_settings: Callable[..., Settings]) -> None:
    """The store's own OpenAI embedder (over the fake server): its calls reach the summary by embedding_usage."""
    with FakeOpenAI(api_key="sk-records") as fake:
        settings = make_settings(embedding_backend="openai", openai_api_key="sk-records", openai_base_url=fake.url)
        with RagStore.open(settings) as store:
            store.collections.create("kb")
            store.documents.add_text("kb", "마라톤 훈련은 주 3회 달린다.")
            store.search("kb", "마라톤", k=1)
            rows = [r for r in store.records.ai_summary(1).rows if r.kind == "embedding"]
            model = store.components.embedder.model
    assert rows and rows[0].requests >= 2 and rows[0].prompt_tokens > 0
    assert rows[0].model == model
