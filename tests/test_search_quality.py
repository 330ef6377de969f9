"""Search quality on the shipped Korean + English evaluation set (tests/data/search_eval/): hybrid beats
dense-only and lexical-only, with each analyzer. The floors sit just under the figures measured by
`python bench/search_quality.py` (docs/benchmarks.md), so a regression in analysis, ranking or fusion
shows up here; speed is not asserted (bench/search_speed.py measures it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.embeddings.local import LocalEmbedder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from search_quality import EVAL, K, first_relevant, load_eval, metrics

PASSAGES, QUESTIONS = load_eval(EVAL)

# analyzer -> method -> minimum (hit@10, MRR@10) over all questions, just under `bench/search_quality.py`'s
# figures on SQLite (docs/benchmarks.md). Since issue #19 the set holds 83 harder questions (cross-lingual and
# near-neighbour distractors). Measured then: dense 0.872 / 0.736, lexical kiwi 0.748 / 0.679, lexical
# bigram 0.748 / 0.686; hybrid with RRF (the fusion before issue #19) kiwi 0.876 / 0.751, bigram 0.876 /
# 0.764; hybrid with the bridge fusion (the default since) kiwi 0.968 / 0.843, bigram 0.972 / 0.828. The
# floors allow one question fewer in the top 10 (a fresh install once measured that with unchanged code).
FLOORS: dict[str, dict[str, tuple[float, float]]] = {
    "kiwi": {"dense": (0.86, 0.73), "lexical": (0.74, 0.67), "hybrid rrf": (0.87, 0.74), "hybrid": (0.96, 0.83)},
    "bigram": {"dense": (0.86, 0.73), "lexical": (0.74, 0.68), "hybrid rrf": (0.87, 0.75), "hybrid": (0.96, 0.81)},
}
# The search arguments of each method.
METHODS: dict[str, dict[str, str]] = {
    "dense": {"mode": "dense"},
    "lexical": {"mode": "lexical"},
    "hybrid rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid": {"mode": "hybrid"},
}
# Hybrid's hit@1 on the cross-lingual questions, just under the measured figure (kiwi 0.40, bigram
# 0.33); RRF found 0.05, dense 0.05, lexical 0.00 or 0.02.
CROSSLINGUAL_HIT1 = {"kiwi": 0.37, "bigram": 0.30}


def test_the_evaluation_set_is_whole() -> None:
    ids = [p["id"] for p in PASSAGES]
    assert len(ids) == len(set(ids)) >= 300
    assert len(QUESTIONS) >= 100
    assert {q["lang"] for q in QUESTIONS} >= {"ko", "en"}
    known = set(ids)
    for q in QUESTIONS:
        assert q["relevant"] and set(q["relevant"]) <= known, q["id"]
    # What issue #19 added: cross-lingual questions both ways, near-neighbour distractors, and English
    # passages inside Korean clusters.
    lang = {p["id"]: p["lang"] for p in PASSAGES}
    pairs = [(q["lang"], lang[q["relevant"][0]]) for q in QUESTIONS if q["kind"] == "crosslingual"]
    assert len(pairs) >= 40 and pairs.count(("ko", "en")) >= 15 and pairs.count(("en", "ko")) >= 15
    assert all(a != b for a, b in pairs)
    assert sum(q["kind"] == "distractor" for q in QUESTIONS) >= 40
    clusters: dict[str, set[str]] = {}
    for p in PASSAGES:
        if "cluster" in p:
            clusters.setdefault(p["cluster"], set()).add(p["lang"])
    assert len(clusters) >= 10 and all(langs == {"ko", "en"} for langs in clusters.values())


@pytest.fixture(scope="module", params=sorted(FLOORS))
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, local_embedder: LocalEmbedder
) -> Iterator[RagStore]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp(request.param) / "data",
        lexical_analyzer=request.param,
        embedding_model=local_embedder.model,
        query_log=False,
    )
    with RagStore.open(settings, embedder=local_embedder) as store:
        store.collections.create("eval")
        store.documents.add("eval", [{"text": p["text"], "title": p["title"], "source_uri": p["id"]} for p in PASSAGES])
        yield store


def ranks_of(store: RagStore, method: str) -> dict[str, int | None]:
    ranks: dict[str, int | None] = {}
    for q in QUESTIONS:
        hits = store.search("eval", q["question"], k=K, **METHODS[method]).hits  # type: ignore[arg-type]
        ranks[q["id"]] = first_relevant(list(dict.fromkeys(h.source_uri for h in hits)), set(q["relevant"]))
    return ranks


def test_hybrid_beats_dense_and_lexical(loaded: RagStore) -> None:
    """Hybrid puts the answer in the top 10 more often, and ranks it higher, than either side alone; and it
    finds English passages for Korean questions and the reverse, which neither side alone does."""
    analyzer = loaded.settings.lexical_analyzer
    ranks = {method: ranks_of(loaded, method) for method in METHODS}
    got = {method: metrics(list(found.values()))[1:] for method, found in ranks.items()}
    for method, (hit10, mrr) in FLOORS[analyzer].items():
        assert got[method][0] >= hit10 and got[method][1] >= mrr, (analyzer, method, got)
    for method in ("hybrid", "hybrid rrf"):
        assert got[method][0] > got["dense"][0] and got[method][0] > got["lexical"][0], (analyzer, got)
        assert got[method][1] > got["dense"][1] and got[method][1] > got["lexical"][1], (analyzer, got)
    crosslingual = [q["id"] for q in QUESTIONS if q["kind"] == "crosslingual"]
    hit1 = {m: sum(ranks[m][i] == 1 for i in crosslingual) / len(crosslingual) for m in METHODS}
    assert hit1["hybrid"] >= CROSSLINGUAL_HIT1[analyzer], (analyzer, hit1)
    assert hit1["hybrid"] > 4 * max(hit1["dense"], hit1["lexical"], hit1["hybrid rrf"]), (analyzer, hit1)
