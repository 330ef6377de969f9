"""Context assembly and appends of issue 18: a conversation of 10,000 messages, and 50 concurrent writers.

    python bench/chat_context.py                                  # SQLite in a temporary folder
    python bench/chat_context.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/chat_context.py --messages 10000 --calls 200 --writers 50 --per-writer 20

1. Context assembly (`store.chat.context`) for a conversation of `--messages` messages in one branch (every
   assistant message cites two chunks of a real document), at several token budgets: cold (the session cache
   bypassed: the recursive walk from the active leaf, the rows, the summary) and from the session cache (the
   key read by primary key, the cached JSON parsed, the citations resolved against the store again), p50 and
   p95 in milliseconds. Targets: <= 30 ms cold, <= 5 ms cached. The last budget (1,000,000) takes the whole
   branch of 10,000 messages, to show what a context that large costs (timed with fewer calls).
2. Appending: `--writers` threads each add `--per-writer` messages to one conversation through
   `store.chat.add` (analyzer, token count, message, lexemes and counters in one transaction); messages/s,
   and whether `message_count` and the branch length are exact afterwards.
On PostgreSQL a scratch database is created on the given server and dropped afterwards. Prints tables.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # this tree, whatever the environment installed

from sqlalchemy import insert, select, update  # noqa: E402

from ragstore import RagStore  # noqa: E402
from ragstore.chat.lexemes import MESSAGE_LEXEMES, message_lexeme_row  # noqa: E402
from ragstore.config import Settings  # noqa: E402
from ragstore.db.chat_models import Conversation, Message  # noqa: E402
from ragstore.text.chunking import count_tokens  # noqa: E402

console = Console(width=150)
MODEL = "bench-chat"
DIM = 16
BUDGETS = (1_000, 4_000, 16_000, 1_000_000)  # the last takes the whole branch: every message
USER = "전세 계약을 갱신하려면 언제까지 집주인에게 알려야 하나요? How early must I tell the landlord?"
ANSWER = (
    "계약 만료 6개월 전부터 2개월 전까지 갱신을 요구할 수 있습니다. You can ask for a renewal between six and "
    "two months before the lease ends; the landlord may refuse only for the reasons the law lists."
)


class BenchEmbedder:
    """Deterministic unit vectors: the benchmark measures chat, not a model."""

    backend = "bench"
    model = MODEL
    dimension = DIM

    def embed(self, texts: Any, *, kind: Any) -> Any:
        rng = np.random.default_rng(len(texts))
        vectors = rng.normal(size=(len(texts), DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_conversation(store: RagStore, messages: int) -> str:
    """One conversation of `messages` messages in one chain, written in bulk (the same rows `add` writes)."""
    store.collections.create("kb", embedding_model=MODEL, dimension=DIM)
    text = " ".join(
        f"문단 {i}: 임대차 보호법은 세입자의 계약 갱신 요구권을 정한다. Section {i} of the act." for i in range(60)
    )
    outcome = store.documents.add_text("kb", text, source_uri="file:lease.txt")
    chunks = store.documents.get("kb", int(outcome.document_id or 0), with_chunks=True).chunks or []
    conversation = store.chat.create(title="bench", collections=["kb"])
    analyze = store.chat.analyze
    user_tokens, answer_tokens = count_tokens(USER), count_tokens(ANSWER)
    user_terms, answer_terms = list(analyze(USER)), list(analyze(ANSWER))
    now = store.clock.now()

    def unit(s: Any) -> None:
        rows, lexemes = [], []
        for n in range(1, messages + 1):
            assistant = n % 2 == 0
            cited = [chunks[(n + k) % len(chunks)] for k in range(2)] if assistant else []
            rows.append(
                {
                    "id": n,
                    "conversation_id": conversation.id,
                    "parent_id": n - 1 or None,
                    "role": "assistant" if assistant else "user",
                    "content": ANSWER if assistant else USER,
                    "routing_info": {},
                    "references": [
                        {
                            "chunk_id": c.id,
                            "document_id": outcome.document_id,
                            "score": 0.8,
                            "content_hash": c.content_hash,
                        }
                        for c in cited
                    ],
                    "token_count": answer_tokens if assistant else user_tokens,
                    "status": "complete",
                    "metadata": {},
                    "created_at": now,
                }
            )
            lexemes.append(message_lexeme_row(n, conversation.id, answer_terms if assistant else user_terms))
        for start in range(0, len(rows), 2000):
            s.execute(insert(Message.__table__), rows[start : start + 2000])
            s.execute(insert(MESSAGE_LEXEMES), lexemes[start : start + 2000])
        s.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(message_count=messages, active_message_id=messages, summary="세입자가 갱신 요구권을 물었다.")
        )

    store.db.write(unit)
    if not store.db.is_sqlite:  # the explicit ids above did not move the sequence
        with store.db.engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT max(id) FROM messages))"
            )
    return conversation.id


def time_context(
    store: RagStore, conversation_id: str, budget: int, calls: int, *, cached: bool
) -> tuple[list[float], Any]:
    result = store.chat.context(conversation_id, budget, use_cache=cached)  # warms the cache (and the connection)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        result = store.chat.context(conversation_id, budget, use_cache=cached)
        times.append((time.perf_counter() - started) * 1000)
    assert result.cached is cached
    return times, result


def appends(store: RagStore, writers: int, per_writer: int) -> tuple[float, int, int, int]:
    conversation = store.chat.create(title="appends")
    errors: list[BaseException] = []
    start = threading.Barrier(writers + 1)

    def write(n: int) -> None:
        start.wait()
        try:
            for i in range(per_writer):
                store.chat.add(conversation.id, role="user", content=f"writer {n} turn {i}: {USER}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    with store.db.read() as s:
        counted = int(s.scalar(select(Conversation.message_count).where(Conversation.id == conversation.id)) or 0)
    branch = len(store.chat.show(conversation.id, limit=10_000).messages)
    return elapsed, writers * per_writer, counted, branch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server (a scratch database is made)")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200, help="timed context calls per budget and mode")
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--per-writer", type=int, default=20)
    args = parser.parse_args()
    database = "PostgreSQL" if args.database_url else "SQLite"
    console.print(
        f"[bold]chat context[/]: {args.messages:,} messages, {database}; {platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ragstore-chat-")))
        url = None
        if args.database_url:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from pgdb import scratch_database

            url = stack.enter_context(scratch_database(args.database_url, "ragstore_chat"))
        settings = Settings(
            data_dir=data_dir,
            database_url=url,
            lexical_analyzer="bigram",
            query_log=False,
            database_pool_size=max(10, args.writers // 2) if url else 5,
        )
        store = stack.enter_context(RagStore.open(settings, embedder=BenchEmbedder(), start_worker=True))  # type: ignore[arg-type]
        loaded = time.perf_counter()
        conversation_id = load_conversation(store, args.messages)
        console.print(f"loaded in {time.perf_counter() - loaded:.1f} s")
        # As `ragstore serve` does once started (api/app.py): what lives as long as the process is kept out of
        # the cyclic collector's full scans, which would otherwise show up as 60-100 ms outliers here.
        gc.collect()
        gc.freeze()

        table = Table(title=f"context assembly, {args.messages:,} messages ({database})")
        for column in (
            "budget",
            "messages",
            "tokens",
            "citations",
            "cold p50 ms",
            "cold p95 ms",
            "cached p50 ms",
            "cached p95 ms",
        ):
            table.add_column(column, justify="right")
        for budget in BUDGETS:
            calls = args.calls if budget <= 100_000 else max(5, args.calls // 10)  # a whole branch is slow
            cold, result = time_context(store, conversation_id, budget, calls, cached=False)
            warm, _ = time_context(store, conversation_id, budget, calls, cached=True)
            states = {r.state for r in result.references}
            table.add_row(
                f"{budget:,}",
                str(len(result.messages)),
                f"{result.tokens:,}",
                f"{len(result.references)} ({', '.join(sorted(states))})",
                f"{statistics.median(cold):.2f}",
                f"{percentile(cold, 0.95):.2f}",
                f"{statistics.median(warm):.2f}",
                f"{percentile(warm, 0.95):.2f}",
            )
        console.print(table)

        elapsed, written, counted, branch = appends(store, args.writers, args.per_writer)
        table = Table(title=f"appends at {args.writers} concurrent writers ({database})")
        for column in ("messages", "seconds", "messages/s", "message_count", "branch length", "exact"):
            table.add_column(column, justify="right")
        table.add_row(
            f"{written:,}",
            f"{elapsed:.2f}",
            f"{written / elapsed:,.0f}",
            f"{counted:,}",
            f"{branch:,}",
            "yes" if counted == written == branch else "NO",
        )
        console.print(table)


if __name__ == "__main__":
    main()
