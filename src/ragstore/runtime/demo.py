"""`ragstore init --demo`: a small demo to look at right after install (issue 18).

It loads: a demo user `demo@ragstore.invalid` with no password (nobody can log in as them), the bundled
sample corpus in collection `samples` (ingested when that collection is absent, used as it is otherwise),
a few Korean and English conversations whose answers cite real chunks of that corpus (chunk id, document id
and the chunk text's content hash), one of them with a regenerated answer (a branch), feedback on answers,
and (once the application records exist) a workflow with executions.

Idempotent: the demo user is the marker. A conversation is seeded only if the demo user owns none with its
title, so `init --demo` twice adds nothing the second time; the workflow part checks its own rows.
The chat rows are written through `store.chat`, so message counts, lexemes and the audit trail are exactly
what a real client would produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ragstore.db.chat_models import Conversation
from ragstore.db.models import Collection, Document, DocumentChunk
from ragstore.db.security_models import User
from ragstore.errors import NotFound
from ragstore.schemas.chat import MessageReference
from ragstore.security.audit import AuditTrail
from ragstore.service import RagStore

__all__ = ["DEMO_COLLECTION", "DEMO_EMAIL", "DemoReport", "corpus_path", "load_demo", "seed_demo_workflows"]

DEMO_EMAIL = "demo@ragstore.invalid"  # .invalid: a domain that can never receive mail
DEMO_COLLECTION = "samples"
DEMO_WORKFLOW = "demo: answer from the sample corpus"


@dataclass(frozen=True, slots=True)
class Turn:
    question: str
    answer: str
    cites: str  # a file name of the sample corpus whose first chunk the answer cites
    regenerated: str = ""  # a second answer to the same question: a branch


@dataclass(frozen=True, slots=True)
class Script:
    title: str
    turns: tuple[Turn, ...]


SCRIPTS = (
    Script(
        "전세 계약 상담",
        (
            Turn(
                "전세 계약 전에 무엇을 확인해야 하나요?",
                "등기부등본으로 소유자와 근저당을 확인하고, 전입신고와 확정일자를 바로 받으세요.",
                "jeonse-contract.md",
                regenerated="계약 전 등기부등본의 근저당 금액을 보고, 잔금일에 전입신고와 확정일자를 받으세요.",
            ),
        ),
    ),
    Script(
        "김치 담그기",
        (
            Turn(
                "배추김치는 어떻게 담그나요?",
                "배추를 소금에 절인 뒤 양념을 고루 발라 숙성시킵니다.",
                "kimchi-recipe.md",
            ),
            Turn("얼마나 숙성하나요?", "실온에서 하루 이틀 익힌 뒤 냉장 보관합니다.", "kimchi-recipe.md"),
        ),
    ),
    Script(
        "Refund question",
        (
            Turn(
                "How many days do I have to ask for a refund?",
                "Refund requests are accepted within the window the refund policy states; see the cited policy.",
                "refund-policy.md",
            ),
        ),
    ),
    Script(
        "Server backups",
        (
            Turn(
                "How often should the server be backed up?",
                "Follow the backup schedule in the guide: regular full backups plus more frequent incrementals.",
                "server-backup.md",
            ),
        ),
    ),
)


@dataclass(slots=True)
class DemoReport:
    user_id: int = 0
    ingested: int = 0
    conversations: int = 0
    messages: int = 0
    workflows: int = 0
    notes: list[str] = field(default_factory=list)


def corpus_path() -> Path | None:
    """The bundled sample corpus: `samples/corpus` of the working folder (`make run`), else of the source tree."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = base / "samples" / "corpus"
        if candidate.is_dir():
            return candidate
    return None


def load_demo(store: RagStore) -> DemoReport:
    """Seed the demo (see the module docstring); what it added, zeros on a second run."""
    report = DemoReport()
    report.user_id = _demo_user(store)
    report.ingested = _ensure_corpus(store, report.notes)
    for script in SCRIPTS:
        added = _seed_conversation(store, report.user_id, script)
        if added:
            report.conversations += 1
            report.messages += added
    report.workflows = seed_demo_workflows(store)
    return report


def seed_demo_workflows(store: RagStore) -> int:
    """A demo workflow with three executions (two succeeded, one failed), once; how many workflows it added."""
    found = store.records.list("workflows", filters={"name": DEMO_WORKFLOW}, limit=1)
    if getattr(found, "items", None):
        return 0
    workflow = store.records.create(
        "workflows",
        {
            "name": DEMO_WORKFLOW,
            "description": "Answer a tenant's question from the sample corpus, citing the chunks used.",
            "definition": {
                "steps": [
                    {"id": "retrieve", "kind": "search", "collection": DEMO_COLLECTION, "mode": "hybrid", "k": 5},
                    {"id": "answer", "kind": "llm", "prompt": "Answer from the retrieved chunks; cite them."},
                    {"id": "check", "kind": "guardrail", "rules": ["no personal data"]},
                ]
            },
        },
    )
    workflow_id = int(getattr(workflow, "id"))  # noqa: B009 - the record types are derived, not declared classes
    now = store.clock.now()
    runs: tuple[tuple[str, dict[str, Any], dict[str, Any], str | None, float], ...] = (
        ("succeeded", {"question": "전세 계약 갱신 조건은?"}, {"answer_chars": 412}, None, 2150.0),
        ("succeeded", {"question": "How do I reset the router?"}, {"answer_chars": 286}, None, 1830.0),
        ("failed", {"question": "보증금 반환 절차"}, {}, "the LLM provider timed out after 30 s", 30_000.0),
    )
    for hours_ago, (status, inputs, outputs, error, duration_ms) in enumerate(runs, start=1):
        started = now - timedelta(hours=hours_ago)
        store.records.create(
            "workflow_executions",
            {
                "workflow_id": workflow_id,
                "status": status,
                "inputs": inputs,
                "outputs": outputs,
                "error": error,
                "started_at": started,
                "finished_at": started + timedelta(milliseconds=duration_ms),
                "duration_ms": duration_ms,
            },
        )
    return 1


def _demo_user(store: RagStore) -> int:
    """The demo user's id, creating them (no password: they cannot log in) on the first run."""
    trail: AuditTrail = store.components.audit_trail

    def unit(s: Any) -> int:
        found = s.scalars(select(User.id).where(User.email == DEMO_EMAIL)).first()
        if found is not None:
            return int(found)
        row = User(email=DEMO_EMAIL, display_name="Demo user", role="read", password_hash=None, active=True)
        s.add(row)
        s.flush()
        trail.append(s, "user.create", target=f"user:{DEMO_EMAIL}", details={"id": row.id, "role": "read"})
        return int(row.id)

    return int(store.components.db.write(unit))


def _ensure_corpus(store: RagStore, notes: list[str]) -> int:
    """Ingest the sample corpus into `samples` when that collection does not exist; documents ingested."""
    try:
        store.collections.get(DEMO_COLLECTION)
        return 0
    except NotFound:
        pass
    corpus = corpus_path()
    if corpus is None:
        notes.append("no samples/corpus folder found: the demo conversations cite nothing")
        return 0
    outcome = store.documents.ingest_paths(
        DEMO_COLLECTION, [corpus], create=lambda: store.collections.create(DEMO_COLLECTION, exist_ok=True)
    )
    return sum(1 for o in outcome.outcomes if o.status != "failed")


def _citation(store: RagStore, file_name: str) -> list[MessageReference]:
    """The first chunk of the sample document `file_name` in `samples`, as a citation (none if absent)."""
    with store.components.db.read() as s:
        row = s.execute(
            select(DocumentChunk.id, DocumentChunk.document_id, DocumentChunk.content_hash)
            .join(Document, Document.id == DocumentChunk.document_id)
            .join(Collection, Collection.id == Document.collection_id)
            .where(Collection.name == DEMO_COLLECTION, Document.status == "active")
            .where(Document.source_uri.like(f"%/{file_name}"))
            .order_by(DocumentChunk.ordinal)
            .limit(1)
        ).first()
    if row is None:
        return []
    return [MessageReference(chunk_id=row.id, document_id=row.document_id, content_hash=row.content_hash, score=0.9)]


def _seed_conversation(store: RagStore, user_id: int, script: Script) -> int:
    """Add one scripted conversation unless the demo user has it already; the messages added."""
    with store.components.db.read() as s:
        exists = s.scalars(
            select(Conversation.id).where(Conversation.owner_user_id == user_id, Conversation.title == script.title)
        ).first()
    if exists is not None:
        return 0
    collections = [DEMO_COLLECTION] if _has_collection(store) else []
    chat = store.chat
    conversation = chat.create(title=script.title, user=user_id, collections=collections, metadata={"demo": True})
    added = 0
    for turn in script.turns:
        question = chat.add(conversation.id, role="user", content=turn.question)
        refs = _citation(store, turn.cites)
        answer = chat.add(conversation.id, role="assistant", content=turn.answer, references=refs, agent_used="demo")
        added += 2
        chat.feedback(answer.id, rating=1, comment="도움이 됐어요" if not turn.question.isascii() else "helpful")
        if turn.regenerated:
            chat.add(
                conversation.id,
                role="assistant",
                content=turn.regenerated,
                parent_id=question.id,
                references=refs,
                agent_used="demo",
            )
            added += 1
    return added


def _has_collection(store: RagStore) -> bool:
    try:
        store.collections.get(DEMO_COLLECTION)
    except NotFound:
        return False
    return True
