"""Lexical, dense and hybrid search latency at 100,000 chunks, on SQLite and PostgreSQL, and the cached path.

    python bench/search_speed.py                                   # SQLite, 100,000 chunks
    python bench/search_speed.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/search_speed.py --chunks 10000 --queries 100      # a quick run

The corpus is generated: Korean text (words of kiwipiepy's dictionary drawn with a Zipf law, particles
attached, 5% English words) with precomputed clustered vectors, so no embedding call is timed. Each query
takes two or three words of a random chunk with other particles, and a vector near that chunk's. Every
query is asked once uncached (the result cache cannot answer: each text is new), then again (the L2
cache answers). Beside ragstore, the raw full-text query on the same database (no join, no visibility
check, no filter) is the floor. Prints a table; no assertion.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.embeddings.base import Embedder
from ragstore.lexical.memory import MemoryLexicalIndex

console = Console()
DIM = 384
SYLLABLES = list(
    "가나다라마바사아자차카타파하고노도로모보소오조초코토포호구누두루무부수우주추쿠투푸후기니디리미비시이지치키티피히"
    "강남동산정선성연영원인전진한현경공관국군금대문민방서신안양용운유은의장제중지천청태통학해화회효"
)
PARTICLES_AFTER_CONSONANT = ["", "", "은", "이", "을", "에", "에서", "으로", "의", "과", "도", "만", "까지"]
PARTICLES_AFTER_VOWEL = ["", "", "는", "가", "를", "에", "에서", "로", "의", "와", "도", "만", "까지"]
HANGUL_WORD = re.compile(r"[\uac00-\ud7a3]{2,5}")
LATIN = ["server", "router", "policy", "refund", "account", "update", "battery", "network", "invoice", "schedule"]


class NoEmbedder:
    """Every chunk's vector is given; a call to embed one would be a bug in the benchmark. A text query (the
    rows that search by text alone) is embedded by the default local model, whose 384-d vector has no meaning
    against the generated ones: those rows time the work, they do not rank."""

    backend = "none"
    model = "bench-vectors"
    dimension = DIM

    def __init__(self) -> None:
        self.queries: Any = None

    def embed(self, texts: Any, *, kind: Any) -> Any:
        if kind != "query":
            raise AssertionError("the benchmark gives every chunk's vector")
        if self.queries is None:
            from ragstore.embeddings.local import LocalEmbedder

            self.queries = LocalEmbedder()
        return self.queries.embed(texts, kind="query")


def vocabulary(rng: np.random.Generator, size: int = 50_000) -> tuple[list[str], np.ndarray]:
    """Real Korean words, drawn with a Zipf law: the proper nouns of kiwipiepy's dictionary (most probable
    first) when it is installed, so the analyzer sees words it knows; else syllable strings."""
    words: list[str] = []
    try:
        import kiwipiepy_model

        entries = []
        path = Path(kiwipiepy_model.__file__).parent / "default.dict"
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1] == "NNP" and HANGUL_WORD.fullmatch(parts[0]):
                entries.append((float(parts[2]) if len(parts) > 2 and parts[2] else 0.0, parts[0]))
        entries.sort(reverse=True)
        words = list(dict.fromkeys(w for _, w in entries))[:size]
    except ImportError:
        pass
    if len(words) < size // 10:
        words = sorted({"".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))) for _ in range(size * 2)})[:size]
        rng.shuffle(words)
    # Offset by 100 ranks: the head of a real vocabulary is function words, which the analyzer drops; the
    # most frequent content word then appears in about one chunk in ten, as in real text.
    weights = 1 / (np.arange(1, len(words) + 1) + 100) ** 1.05
    return words, weights / weights.sum()


def with_particle(word: str, rng: np.random.Generator) -> str:
    """A particle that agrees with the last syllable (은/는, 이/가, 을/를, 으로/로, 과/와), or none."""
    batchim = (ord(word[-1]) - 0xAC00) % 28 != 0 if HANGUL_WORD.fullmatch(word) else False
    choices = PARTICLES_AFTER_CONSONANT if batchim else PARTICLES_AFTER_VOWEL
    return word + choices[int(rng.integers(len(choices)))]


def corpus(n: int, seed: int = 11) -> tuple[list[str], np.ndarray, list[list[str]]]:
    rng = np.random.default_rng(seed)
    vocab, p = vocabulary(rng)
    texts, words_of = [], []
    drawn = rng.choice(len(vocab), size=(n, 60), p=p)
    for row in drawn:
        words = [vocab[i] for i in row]
        eojeol = [with_particle(w, rng) for w in words]
        for j in rng.integers(0, len(eojeol), 3):
            eojeol[j] = LATIN[int(rng.integers(len(LATIN)))]
        texts.append(" ".join(eojeol) + ".")
        words_of.append(words)
    centres = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return texts, vectors.astype(np.float32), words_of


def queries(words_of: list[list[str]], vectors: np.ndarray, count: int, seed: int = 5) -> list[tuple[str, list[float]]]:
    rng = np.random.default_rng(seed)
    out = []
    for serial, i in enumerate(rng.integers(0, len(words_of), count)):
        picked = rng.choice(words_of[i], size=int(rng.integers(2, 4)), replace=False)
        # A serial suffix keeps every text distinct, so the first pass never meets the cache.
        q = " ".join(with_particle(str(w), rng) for w in picked) + f" {serial}"
        v = vectors[i] + 0.2 * rng.normal(size=DIM).astype(np.float32)
        out.append((q, (v / np.linalg.norm(v)).tolist()))
    return out


def timed(fn: Callable[[], Any], repeats: list[float]) -> None:
    started = time.perf_counter()
    fn()
    repeats.append((time.perf_counter() - started) * 1000)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(store: RagStore, texts: list[str], vectors: np.ndarray, per_doc: int = 5, batch_docs: int = 500) -> float:
    started = time.perf_counter()
    docs = []
    for d in range(0, len(texts), per_doc):
        docs.append(
            {
                "title": f"doc {d // per_doc}",
                "source_uri": f"bench:{d // per_doc}",
                "metadata": {"shard": (d // per_doc) % 10, "year": 2015 + (d // per_doc) % 10},
                "chunks": [
                    {"text": texts[i], "vector": vectors[i].tolist()} for i in range(d, min(d + per_doc, len(texts)))
                ],
            }
        )
    for start in range(0, len(docs), batch_docs):
        store.documents.add("speed", docs[start : start + batch_docs], wait=False)
    store.index.wait()
    loaded = time.perf_counter() - started
    # Planner statistics, as after any bulk load (PostgreSQL's autovacuum would do it within a minute; it is
    # off on this machine's server; SQLite never gathers them by itself).
    with store.db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return loaded


def raw_lexical(store: RagStore) -> Callable[[str], Any]:
    """The floor: the full-text engine alone, best ten by its own rank, nothing joined."""
    if store.db.is_sqlite:
        sql = "SELECT rowid FROM chunk_lexemes_fts WHERE chunk_lexemes_fts MATCH ? ORDER BY rank LIMIT 10"
        from ragstore.lexical.sqlite_fts import fts_match

        def sqlite_query(q: str) -> Any:
            terms = store.components.lexical_indexer.query(store.components.catalog.resolve("speed").id, q)
            return store.db.raw_sqlite_rows(sql, (fts_match(terms),))

        return sqlite_query
    from ragstore.lexical.postgres_fts import tsquery_text

    statement = text(
        "SELECT chunk_id FROM chunk_lexemes WHERE tsv @@ to_tsquery('simple', :q) "
        "ORDER BY ts_rank(tsv, to_tsquery('simple', :q), 1) DESC LIMIT 10"
    )

    def pg_query(q: str) -> Any:
        terms = store.components.lexical_indexer.query(store.components.catalog.resolve("speed").id, q)
        return store.db.fetch(statement, {"q": tsquery_text(terms)})

    return pg_query


@contextmanager
def _fresh(scope: Any) -> Iterator[tuple[str, bool]]:
    with scope as url:
        yield url, False


def plain_pg(store: RagStore) -> Callable[[str], Any] | None:
    """PostgreSQL's GIN index alone: the first ten matches, unranked. Any plan that ranks by `ts_rank` over
    the GIN matches costs at least this plus reading each match's tsvector."""
    if store.db.is_sqlite:
        return None
    from ragstore.lexical.postgres_fts import tsquery_text

    statement = text("SELECT chunk_id FROM chunk_lexemes WHERE tsv @@ to_tsquery('simple', :q) LIMIT 10")

    def pg_query(q: str) -> Any:
        terms = store.components.lexical_indexer.query(store.components.catalog.resolve("speed").id, q)
        return store.db.fetch(statement, {"q": tsquery_text(terms)})

    return pg_query


def bm25s_peer(store: RagStore) -> tuple[Callable[[str], Any], float] | None:
    """bm25s (BM25 over scipy sparse matrices) indexed on the same analysed terms as ragstore's rows, k1 1.2,
    b 0.75, Lucene's IDF: what a specialised library takes for the same ranking (no visibility check, no
    filter). Returns the query function and the indexing time."""
    try:
        import bm25s
    except ImportError:
        console.print("bm25s is not installed (pip install -e '.[bench]'): its row is left out")
        return None
    cid = store.components.catalog.resolve("speed").id
    rows = store.db.fetch(
        text("SELECT chunk_id, terms FROM chunk_lexemes WHERE collection_id = :c ORDER BY chunk_id"), {"c": cid}
    )
    ids = np.array([int(r[0]) for r in rows])
    started = time.perf_counter()
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index([r[1].split() for r in rows], show_progress=False)
    seconds = time.perf_counter() - started
    known = retriever.vocab_dict

    def query(q: str) -> Any:
        terms = [t.text for t in store.components.lexical_indexer.query(cid, q) if t.text in known]
        if not terms:
            return []
        found, _ = retriever.retrieve([terms], k=10, show_progress=False, n_threads=1)
        return ids[found[0]]

    return query, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--analyzer", default="auto")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="the data directory to load into, or to reuse if it holds the corpus already (with PostgreSQL, "
        "give --keep-database too)",
    )
    parser.add_argument(
        "--keep-database",
        default=None,
        help="PostgreSQL: the database to load into and keep (reused with --keep's directory); dropped by hand",
    )
    parser.add_argument("--load-only", action="store_true", help="load (or find) the corpus and stop")
    parser.add_argument(
        "--rows",
        default=None,
        help="a regular expression: only the table's rows whose label it matches (re.search) are measured, "
        "e.g. '^(lexical|dense|hybrid)' leaves out the SQL index's rows, the floors and the peer",
    )
    args = parser.parse_args()

    texts, vectors, words_of = corpus(args.chunks)
    asked = queries(words_of, vectors, args.queries)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    console.print(
        f"{args.chunks:,} chunks, {args.queries} queries, {backend}, analyzer {args.analyzer}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    if args.database_url:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from pgdb import kept_database, scratch_database

        if args.keep_database:
            scope: Any = kept_database(args.database_url, args.keep_database)
        else:
            scope = _fresh(scratch_database(args.database_url, "ragstore_speed"))
    else:
        scope = nullcontext((None, True))
    with tempfile.TemporaryDirectory() as tmp, scope as (url, existed):
        kept = args.keep is not None and (url is None or args.keep_database)
        data_dir = args.keep if kept else Path(tmp) / "data"
        reuse = data_dir.exists() and existed
        settings = Settings(data_dir=data_dir, database_url=url, lexical_analyzer=args.analyzer, query_log=False)
        embedder: Embedder = NoEmbedder()  # type: ignore[assignment]
        with RagStore.open(settings, embedder=embedder, start_worker=True) as store:
            if reuse:
                console.print(f"reusing the corpus loaded in {data_dir}")
            else:
                store.collections.create("speed", embedding_model="bench-vectors", dimension=DIM)
                seconds = load(store, texts, vectors)
                console.print(
                    f"loaded in {seconds:.0f} s ({args.chunks / seconds:,.0f} chunks/s, analyzer "
                    f"{store.index.lexical_status()[0].analyzer}, with the vector index built alongside)"
                )
            if args.load_only:
                return
            memory = store.components.lexical
            engine = store.components.engine
            sql_index = getattr(memory, "fallback", memory)
            if isinstance(memory, MemoryLexicalIndex):
                memory.forget()
                started = time.perf_counter()
                store.search("speed", "첫 질문", mode="lexical")
                console.print(
                    f"first lexical search (builds this process's in-memory BM25 index): "
                    f"{time.perf_counter() - started:.2f} s (build {memory.last_build_s:.2f} s), "
                    f"{memory.held_bytes() / 1e6:.1f} MB"
                )
            started = time.perf_counter()
            store.search("speed", "첫 질문", vector=asked[0][1], mode="hybrid")
            console.print(
                f"first bridged search (builds this process's vocabulary index): {time.perf_counter() - started:.1f} s"
            )
            raw = raw_lexical(store)

            def on_sql(run: Callable[[str, list[float]], Any]) -> Callable[[str, list[float]], Any]:
                """The same search through the SQL index alone (as before the in-memory index)."""

                bridge = store.components.term_bridge

                def swapped(q: str, v: list[float]) -> Any:
                    engine.lexical = sql_index
                    if bridge is not None:  # the expansion's document frequencies from SQL too
                        bridge.frequencies = sql_index.document_frequencies
                    try:
                        return run(q, v)
                    finally:
                        engine.lexical = memory
                        if bridge is not None:
                            bridge.frequencies = memory.document_frequencies

                return swapped

            lexical_run = lambda q, v: store.search("speed", q, mode="lexical")  # noqa: E731
            filtered_run = lambda q, v: store.search(  # noqa: E731
                "speed", q, mode="lexical", filter={"shard": 3, "year": {"$gte": 2018}}
            )
            hybrid_run = lambda q, v: store.search("speed", q, vector=v, mode="hybrid")  # noqa: E731
            runs: list[tuple[str, Callable[[str, list[float]], Any]]] = [
                ("raw full-text query (floor)", lambda q, v: raw(q)),
            ]
            plain = plain_pg(store)
            if plain is not None:
                runs.append(("PostgreSQL @@ alone, unranked (GIN floor)", lambda q, v: plain(q)))
            wanted = re.compile(args.rows).search if args.rows else lambda label: True
            peer = bm25s_peer(store) if wanted("peer: bm25s, same terms (no visibility check)") else None
            if peer is not None:
                console.print(f"bm25s indexed the same terms in {peer[1]:.1f} s")
                runs.append(("peer: bm25s, same terms (no visibility check)", lambda q, v: peer[0](q)))
            runs += [
                ("lexical, SQL index (before)", on_sql(lexical_run)),
                ("lexical + filter, SQL index (before)", on_sql(filtered_run)),
                ("hybrid, SQL index (before)", on_sql(hybrid_run)),
                ("lexical", lexical_run),
                (
                    "lexical + filter (shard, year range)",
                    lambda q, v: store.search("speed", q, mode="lexical", filter={"shard": 3, "year": {"$gte": 2018}}),
                ),
                ("dense (vector)", lambda q, v: store.search("speed", vector=v, mode="dense")),
                (
                    "dense + filter",
                    lambda q, v: store.search(
                        "speed", vector=v, mode="dense", filter={"shard": 3, "year": {"$gte": 2018}}
                    ),
                ),
                ("hybrid (text + vector)", lambda q, v: store.search("speed", q, vector=v, mode="hybrid")),
                (
                    "hybrid, rrf fusion (before issue #19)",
                    lambda q, v: store.search("speed", q, vector=v, mode="hybrid", fusion="rrf"),
                ),
                ("hybrid, text query (e5 embeds it)", lambda q, v: store.search("speed", q, mode="hybrid")),
                (
                    "hybrid, text query, rrf fusion",
                    lambda q, v: store.search("speed", q, mode="hybrid", fusion="rrf"),
                ),
                (
                    "hybrid + filter",
                    lambda q, v: store.search(
                        "speed", q, vector=v, mode="hybrid", filter={"shard": 3, "year": {"$gte": 2018}}
                    ),
                ),
            ]
            table = Table(title=f"search latency at {args.chunks:,} chunks ({backend}), ms")
            for col in ("operation", "p50", "p99", "mean", "results/query"):
                table.add_column(col, justify="left" if col == "operation" else "right")
            runs = [(label, run) for label, run in runs if wanted(label)]
            for row, (label, run) in enumerate(runs):
                for q, v in asked[:10]:
                    run(q + " warm", v)
                times: list[float] = []
                counts: list[int] = []
                for n, (q, v) in enumerate(asked):
                    started = time.perf_counter()
                    result = run(f"{q} r{row}q{n}", v)  # a text of its own: no cache answers
                    times.append((time.perf_counter() - started) * 1000)
                    counts.append(len(result.hits) if hasattr(result, "hits") else len(result))
                table.add_row(
                    label,
                    f"{pct(times, 0.5):.2f}",
                    f"{pct(times, 0.99):.2f}",
                    f"{statistics.fmean(times):.2f}",
                    f"{statistics.fmean(counts):.1f}",
                )
            for label, run in (
                ("lexical, cached (same query again)", lambda q, v: store.search("speed", q, mode="lexical")),
                ("hybrid, cached (same query again)", lambda q, v: store.search("speed", q, vector=v, mode="hybrid")),
            ):
                if not wanted(label):
                    continue
                for q, v in asked:
                    run(q, v)
                times = []
                for q, v in asked:
                    timed(lambda q=q, v=v, run=run: run(q, v), times)
                table.add_row(
                    label, f"{pct(times, 0.5):.3f}", f"{pct(times, 0.99):.3f}", f"{statistics.fmean(times):.3f}", ""
                )
            console.print(table)


if __name__ == "__main__":
    main()
