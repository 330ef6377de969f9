"""Message search at a million messages, on SQLite and PostgreSQL (issue 18: p50 ≤ 20 ms on both).

    python bench/message_search.py [--messages 1000000] [--users 1000] [--database-url URL] [--queries 40]

The store is generated with SQL bulk inserts (ids given, so no per-row RETURNING): `--users` users with ten
conversations each, messages spread evenly, each 8–24 words drawn from a Zipf-like vocabulary of Korean
words (with particles) and English words. Terms are the bigram analyzer's (kiwi would take hours on a million
messages; the query side uses the same analyzer, as a store configured with it would). A fraction of the
conversations is soft-deleted, so the visibility rule has work to do.

Timed through `store.chat.search` (the facade, what every face calls), per kind of term (rare, medium,
common document frequency; Korean and English) and per caller: an admin without filters (the whole store),
and a user (their own conversations, the usual chat case). Beside them, in the same run: the raw floor, the
full-text engine ranking the same query alone (FTS5 `bm25` / `ts_rank` over every match, no join, no
visibility), which is what a hand-built message table would run.
Prints a table; asserts only that the searches found what the generator put there.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from ragstore.config import Settings
from ragstore.db.chat_models import Conversation, Message, MessageLexeme
from ragstore.db.security_models import User
from ragstore.db.ulids import new_ulid
from ragstore.lexical.base import clean_terms
from ragstore.security.context import acting_as
from ragstore.security.principal import Principal, PrincipalKind, Role
from ragstore.service import RagStore
from ragstore.text.analyzers import BigramAnalyzer

sys.path.insert(0, str(Path(__file__).parent))

KO_STEMS = [
    a + b
    for a in "가나다라마바사아자차카타파하전세계약보증금임대인차관리비주택등기"
    for b in "가나다라마바사아자차카타파하금리월세집값은행"
]
KO_PARTICLES = ["", "을", "를", "이", "가", "은", "는", "에", "에서", "으로", "의", "도"]
EN_WORDS = [
    f"{c}{v}{e}"
    for c in "bcdfghklmnprstvw"
    for v in ("a", "e", "i", "o", "u", "ai", "ea")
    for e in ("n", "t", "rk", "ll")
]


def _zipf(rng: random.Random, n: int) -> int:
    """An index in [0, n) with Zipf-like weights (rank r drawn with probability ~ 1/r)."""
    return min(n - 1, int(n ** rng.random()) - 1)


def _text(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(8, 24)):
        if rng.random() < 0.6:
            words.append(KO_STEMS[_zipf(rng, len(KO_STEMS))] + rng.choice(KO_PARTICLES))
        else:
            words.append(EN_WORDS[_zipf(rng, len(EN_WORDS))])
    return " ".join(words)


def generate(store: RagStore, messages: int, users: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    analyzer = BigramAnalyzer()
    now = datetime.now(UTC)
    user_ids = list(range(1, users + 1))
    per_user = 10
    conversation_ids: list[str] = []
    with store.db.engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {"id": u, "email": f"user{u}@example.org", "display_name": "", "role": "write", "active": True}
                for u in user_ids
            ],
        )
        rows = []
        for u in user_ids:
            for _c in range(per_user):
                cid = new_ulid(now - timedelta(days=rng.randint(0, 300)))
                conversation_ids.append(cid)
                rows.append(
                    {
                        "id": cid,
                        "owner_user_id": u,
                        "collections": [],
                        "title": "",
                        "summary": "",
                        "message_count": 0,
                        "is_active": True,
                        "metadata_": {},
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                        "deleted_at": now if rng.random() < 0.05 else None,
                    }
                )
        conn.execute(insert(Conversation), rows)
    batch = 20_000
    made = 0
    started = time.perf_counter()
    while made < messages:
        size = min(batch, messages - made)
        message_rows = []
        lexeme_rows = []
        for i in range(size):
            mid = made + i + 1
            cid = conversation_ids[mid % len(conversation_ids)]
            content = _text(rng)
            terms = clean_terms(analyzer.terms(content))
            message_rows.append(
                {
                    "id": mid,
                    "conversation_id": cid,
                    "parent_id": None,
                    "role": "user" if mid % 2 else "assistant",
                    "content": content,
                    "routing_info": {},
                    "references": [],
                    "token_count": len(content) // 3,
                    "status": "complete",
                    "metadata_": {},
                    "created_at": now - timedelta(seconds=messages - mid),
                }
            )
            lexeme_rows.append(
                {"message_id": mid, "conversation_id": cid, "terms": " ".join(terms), "term_count": len(terms)}
            )
        with store.db.engine.begin() as conn:
            conn.execute(insert(Message), message_rows)
            conn.execute(insert(MessageLexeme), lexeme_rows)
        made += size
        print(f"\r  generated {made:,} messages ({time.perf_counter() - started:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    with store.db.engine.begin() as conn:
        if store.db.is_sqlite:
            conn.execute(text("INSERT INTO message_lexemes_fts(message_lexemes_fts) VALUES ('optimize')"))
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    return user_ids


def _document_frequency(store: RagStore, term: str) -> int:
    with store.db.engine.connect() as conn:
        if store.db.is_sqlite:
            row = conn.execute(text("SELECT doc FROM message_lexemes_vocab WHERE term = :t"), {"t": term}).first()
            return int(row[0]) if row else 0
        return int(
            conn.execute(
                text("SELECT count(*) FROM message_lexemes WHERE tsv @@ to_tsquery('simple', :t)"), {"t": term}
            ).scalar_one()
        )


def _pick_terms(store: RagStore, total: int) -> dict[str, str]:
    """One Korean and one English query per band of document frequency, found by probing the vocabulary."""
    bands = {"rare": (0.0, 0.005), "medium": (0.01, 0.05), "common": (0.1, 0.5)}
    candidates = {
        "ko": [KO_STEMS[i] + "를" for i in (0, 3, 10, 30, 100, 200, 300, 400, 500, 550, -40, -1)],
        "en": [EN_WORDS[i] for i in (0, 2, 5, 10, 30, 60, 100, 200, 300, 400, -8, -1)],
    }
    analyzer = BigramAnalyzer()
    picked: dict[str, str] = {}
    for language, words in candidates.items():
        for word in words:
            first = clean_terms(analyzer.terms(word))[0]
            share = _document_frequency(store, first) / total
            for band, (low, high) in bands.items():
                if low <= share <= high and f"{band} {language}" not in picked:
                    picked[f"{band} {language}"] = word
    return picked


def _raw(store: RagStore, word: str, k: int) -> None:
    terms = clean_terms(BigramAnalyzer().terms(word))
    with store.db.engine.connect() as conn:
        if store.db.is_sqlite:
            match = " OR ".join(f'"{t}"' for t in terms)
            conn.execute(
                text(
                    "SELECT rowid FROM message_lexemes_fts WHERE message_lexemes_fts MATCH :m "
                    "ORDER BY bm25(message_lexemes_fts) LIMIT :k"
                ),
                {"m": match, "k": k},
            ).all()
        else:
            conn.execute(
                text(
                    "SELECT message_id FROM message_lexemes WHERE tsv @@ to_tsquery('simple', :q) "
                    "ORDER BY ts_rank(tsv, to_tsquery('simple', :q), 1) DESC LIMIT :k"
                ),
                {"q": " | ".join(terms), "k": k},
            ).all()


def _times(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="msgsearch-")))
        url = args.database_url
        if url:
            from pgdb import scratch_database

            url = stack.enter_context(scratch_database(url, prefix="ragstore_msgsearch"))
        settings = Settings(data_dir=data, database_url=url, lexical_analyzer="bigram", auth="off")
        store = stack.enter_context(RagStore.open(settings, recover=False))
        dialect = "SQLite" if store.db.is_sqlite else "PostgreSQL"
        t0 = time.perf_counter()
        users = generate(store, args.messages, args.users)
        print(f"{dialect}: generated {args.messages:,} messages in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        picked = _pick_terms(store, args.messages)
        admin = Principal(PrincipalKind.KEY, "bench", {"*": Role.ADMIN}, key_id=1)
        rng = random.Random(3)
        print(f"\n{dialect}, {args.messages:,} messages, {args.users:,} users, k=10, ms")
        print("| query | df | raw engine p50 | admin p50 / p95 | user p50 / p95 | hits admin / user |")
        print("|---|---|---|---|---|---|")
        for label, word in sorted(picked.items()):
            df = _document_frequency(store, clean_terms(BigramAnalyzer().terms(word))[0])
            raw50, _ = _times(lambda w=word: _raw(store, w, 10), args.queries)
            with acting_as(admin):
                a50, a95 = _times(lambda w=word: store.chat.search(w), args.queries)
                admin_hits = len(store.chat.search(word).hits)
            who = rng.choice(users)
            person = Principal(PrincipalKind.USER, f"user{who}@example.org", {"*": Role.WRITE}, user_id=who)
            with acting_as(person):
                u50, u95 = _times(lambda w=word: store.chat.search(w), args.queries)
                user_hits = len(store.chat.search(word).hits)
            assert admin_hits > 0, f"{word!r} found nothing"
            print(
                f"| {label} `{word}` | {df:,} | {raw50:.2f} | {a50:.2f} / {a95:.2f} | {u50:.2f} / {u95:.2f} "
                f"| {admin_hits} / {user_hits} |"
            )


if __name__ == "__main__":
    main()
