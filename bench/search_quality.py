"""Search quality on the shipped Korean + English evaluation set (tests/data/search_eval/).

    python bench/search_quality.py                                   # SQLite, both analyzers
    python bench/search_quality.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Loads every passage as a document and asks every question in each mode: dense (the default local model),
lexical (each analyzer: the in-memory BM25 index, and the SQL index alone with RAGSTORE_LEXICAL_MEMORY_MB=0,
on PostgreSQL with and without its BM25 re-rank) and hybrid (the bridge fusion, the
default, and RRF). Beside them, the
peers' lexical approaches on the same passages: SQLite FTS5 with the trigram tokenizer (what Chroma uses
for document search) and FTS5 `unicode61` on raw whitespace words. Prints hit@1, hit@5, hit@10 and MRR@10
overall, per question kind and per question and document language ("ko→en": a Korean question whose answer
is an English passage), for the whole set and for its held-out half (`held_out`: a fixed half of the
questions, chosen by a hash of the question id, that no fusion or ranking choice may be fitted to). No
assertion: the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.embeddings.local import DEFAULT_LOCAL_MODEL, LocalEmbedder

console = Console()
EVAL = Path(__file__).resolve().parent.parent / "tests" / "data" / "search_eval"
K = 10


def load_eval(directory: Path = EVAL) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def read(pattern: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for path in sorted(directory.glob(pattern)):
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return rows

    return read("passages*.jsonl"), read("questions*.jsonl")


@dataclass
class Score:
    label: str
    ranks: dict[str, int | None]  # question id -> rank of the first relevant passage (1-based), None if not in top 10


def held_out(question: dict[str, Any]) -> bool:
    """The fixed half of the questions kept out of every choice of fusion and ranking (a hash, not a random draw,
    so the split is the same in every run and for every new question)."""
    return zlib.crc32(question["id"].encode()) % 2 == 1


def language_pair(question: dict[str, Any], passage_lang: dict[str, str]) -> str:
    """ "ko→en": the question's language and that of its (first) relevant passage."""
    return f"{question['lang']}→{passage_lang.get(question['relevant'][0], '?')}"


def hit_at(ranks: list[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r <= k) / (len(ranks) or 1)


def metrics(ranks: list[int | None]) -> tuple[float, float, float]:
    n = len(ranks) or 1
    hit1 = sum(1 for r in ranks if r == 1) / n
    hit10 = sum(1 for r in ranks if r is not None and r <= K) / n
    mrr = sum(1 / r for r in ranks if r is not None and r <= K) / n
    return hit1, hit10, mrr


def first_relevant(ids: list[str], relevant: set[str]) -> int | None:
    for rank, pid in enumerate(ids[:K], start=1):
        if pid in relevant:
            return rank
    return None


def ragstore_runs(
    passages: list[dict[str, Any]],
    questions: list[dict[str, Any]],
    *,
    analyzer: str,
    database_url: str | None,
    embedder: LocalEmbedder,
    modes: list[tuple[str, dict[str, Any], dict[str, Any]]],
) -> list[Score]:
    """One store per analyzer (and per settings variant); each mode's ranks."""
    out: list[Score] = []
    by_settings: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    variants: dict[str, dict[str, Any]] = {}
    for label, settings_overrides, search_args in modes:
        key = json.dumps(settings_overrides, sort_keys=True)
        variants[key] = settings_overrides
        by_settings[key].append((label, search_args))
    for key, overrides in variants.items():
        with tempfile.TemporaryDirectory() as tmp, scratch(database_url) if database_url else nullcontext(None) as url:
            settings = Settings(
                data_dir=Path(tmp) / "data",
                database_url=url,
                lexical_analyzer=analyzer,
                embedding_model=embedder.model,
                query_log=False,
                search_cache_ttl_s=0,
                **overrides,
            )
            with RagStore.open(settings, embedder=embedder) as store:
                store.collections.create("eval")
                store.documents.add(
                    "eval",
                    [{"text": p["text"], "title": p["title"], "source_uri": p["id"]} for p in passages],
                )
                for label, args in by_settings[key]:
                    ranks: dict[str, int | None] = {}
                    started = time.perf_counter()
                    for q in questions:
                        hits = store.search("eval", q["question"], k=K, **args).hits
                        ids = list(dict.fromkeys(h.source_uri for h in hits))
                        ranks[q["id"]] = first_relevant(ids, set(q["relevant"]))
                    elapsed = (time.perf_counter() - started) / len(questions) * 1000
                    out.append(Score(f"{label} ({elapsed:.1f} ms/q)", ranks))
    return out


@contextmanager
def scratch(server_url: str) -> Iterator[str]:
    from pgdb import scratch_database

    with scratch_database(server_url, "ragstore_quality") as url:
        yield url


def fts5_peer(
    passages: list[dict[str, Any]],
    questions: list[dict[str, Any]],
    tokenizer: str,
    query_terms: Callable[[str], list[str]],
) -> list[int | None] | dict[str, int | None]:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE VIRTUAL TABLE p USING fts5(pid UNINDEXED, body, tokenize='{tokenizer}')")
    conn.executemany(
        "INSERT INTO p (pid, body) VALUES (?, ?)", [(p["id"], p["title"] + "\n" + p["text"]) for p in passages]
    )
    ranks: dict[str, int | None] = {}
    for q in questions:
        terms = query_terms(q["question"])
        if not terms:
            ranks[q["id"]] = None
            continue
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        ids = [r[0] for r in conn.execute("SELECT pid FROM p WHERE p MATCH ? ORDER BY bm25(p) LIMIT ?", (match, K))]
        ranks[q["id"]] = first_relevant(ids, set(q["relevant"]))
    return ranks


WORDS = re.compile(r"[^\W_]+", re.UNICODE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL server URL (a scratch database is made)")
    parser.add_argument("--model", default=DEFAULT_LOCAL_MODEL)
    parser.add_argument("--analyzers", default="kiwi,bigram")
    parser.add_argument("--engine", default="auto", choices=["auto", "int8", "float32"], help="the e5 engine")
    args = parser.parse_args()

    passages, questions = load_eval()
    console.print(
        f"eval set: {len(passages)} passages, {len(questions)} questions "
        f"({sum(q['lang'] == 'ko' for q in questions)} ko, {sum(q['lang'] == 'en' for q in questions)} en, "
        f"{sum(q['lang'] == 'mixed' for q in questions)} mixed); model {args.model}; "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    embedder = LocalEmbedder(args.model, engine=args.engine)
    scores: list[Score] = []
    pg = args.database_url is not None
    for i, analyzer in enumerate(args.analyzers.split(",")):
        modes: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        if i == 0:
            modes.append(("dense", {}, {"mode": "dense"}))
        if pg:
            ts_rank = {"lexical_pg_rerank": "none", "lexical_memory_mb": 0}
            rerank = {"lexical_pg_rerank": "bm25", "lexical_memory_mb": 0}
            modes += [
                (f"lexical {analyzer} ts_rank", ts_rank, {"mode": "lexical"}),
                (f"lexical {analyzer} bm25 re-rank", rerank, {"mode": "lexical"}),
                (f"lexical {analyzer} in-memory BM25 (default)", {}, {"mode": "lexical"}),
                (f"hybrid {analyzer} rrf ts_rank", ts_rank, {"mode": "hybrid", "fusion": "rrf"}),
                (f"hybrid {analyzer} rrf bm25", rerank, {"mode": "hybrid", "fusion": "rrf"}),
                (f"hybrid {analyzer} rrf in-memory BM25", {}, {"mode": "hybrid", "fusion": "rrf"}),
                (f"hybrid {analyzer} bridge bm25 re-rank", rerank, {"mode": "hybrid"}),
                (f"hybrid {analyzer} bridge in-memory BM25 (default)", {}, {"mode": "hybrid"}),
            ]
        else:
            fts5 = {"lexical_memory_mb": 0}  # the SQL index alone, as before the in-memory BM25 index
            modes += [
                (f"lexical {analyzer} FTS5 bm25()", fts5, {"mode": "lexical"}),
                (f"hybrid {analyzer} bridge, FTS5", fts5, {"mode": "hybrid"}),
                (f"hybrid {analyzer} rrf, FTS5", fts5, {"mode": "hybrid", "fusion": "rrf"}),
                (f"lexical {analyzer}", {}, {"mode": "lexical"}),
                (f"hybrid {analyzer} bridge (default)", {}, {"mode": "hybrid"}),
                (f"hybrid {analyzer} rrf", {}, {"mode": "hybrid", "fusion": "rrf"}),
                (f"hybrid {analyzer} rrf rrf_k=20", {}, {"mode": "hybrid", "fusion": "rrf", "rrf_k": 20}),
            ]
        scores += ragstore_runs(
            passages, questions, analyzer=analyzer, database_url=args.database_url, embedder=embedder, modes=modes
        )
    trigram = fts5_peer(passages, questions, "trigram", lambda q: [w for w in q.split() if len(w) >= 3])
    unicode_words = fts5_peer(passages, questions, "unicode61", lambda q: WORDS.findall(q.lower()))
    scores.append(Score("peer: FTS5 trigram (Chroma's)", dict(trigram)))
    scores.append(Score("peer: FTS5 unicode61 words", dict(unicode_words)))

    passage_lang = {p["id"]: p["lang"] for p in passages}
    report(scores, questions, passage_lang, "all questions")
    report(scores, [q for q in questions if held_out(q)], passage_lang, "held-out half")


def report(scores: list[Score], questions: list[dict[str, Any]], passage_lang: dict[str, str], title: str) -> None:
    """Overall figures, then hit@1 (and hit@5) per question kind and per question→passage language pair."""
    table = Table(title=f"{title}: {len(questions)} questions")
    for col in ("method", "hit@1", "hit@5", "hit@10", "MRR@10"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for score in scores:
        ranks = [score.ranks[q["id"]] for q in questions]
        h1, h10, mrr = metrics(ranks)
        table.add_row(score.label, f"{h1:.3f}", f"{hit_at(ranks, 5):.3f}", f"{h10:.3f}", f"{mrr:.3f}")
    console.print(table)
    groupings: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("kind", lambda q: str(q.get("kind", "?"))),
        ("question→passage language", lambda q: language_pair(q, passage_lang)),
    ]
    for name, key in groupings:
        values = sorted({key(q) for q in questions})
        table = Table(title=f"{title}: hit@1 / hit@5 by {name}")
        table.add_column("method")
        for value in values:
            table.add_column(f"{value} ({sum(key(q) == value for q in questions)})", justify="right")
        for score in scores:
            cells = []
            for value in values:
                ranks = [score.ranks[q["id"]] for q in questions if key(q) == value]
                cells.append(f"{metrics(ranks)[0]:.2f} / {hit_at(ranks, 5):.2f}")
            table.add_row(score.label, *cells)
        console.print(table)


if __name__ == "__main__":
    main()
