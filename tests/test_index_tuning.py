"""Self-tuning search breadth (issue 22): each collection's ef_search measured against RAGSTORE_TARGET_RECALL on
its own vectors, kept in `index_tuning`, applied at open and by the server's check, measured again when due.

Small and quick on purpose: 2,500 loosely clustered 64-d vectors (past the embedded index's exact-search size)
need a measurable breadth for recall@10 0.99, where tight clusters would be met at the first rung.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.clock import ManualClock, as_utc
from ragstore.config import Settings
from ragstore.db.index_models import IndexTuning
from ragstore.errors import NotFound
from ragstore.indexing.tuning import RETUNE_AFTER, due_reason
from ragstore.runtime.maintenance import run_maintenance
from ragstore.runtime.scheduler import INDEX_TUNING_JOB, MaintenanceScheduler
from ragstore.service import RagStore
from ragstore.vectors.base import CollectionSpec, VectorIndex, search_depth
from ragstore.vectors.embedded import EmbeddedVectorIndex
from ragstore.vectors.registry import BACKENDS
from ragstore.vectors.tuning import ACCURACY, LADDER, measure

DIM = 64
TARGET = 0.99
SAMPLE = 200  # queries per measurement (the store's own is 500)


class NoEmbedder:
    """Every chunk comes with its vector: nothing is embedded."""

    backend = "none"
    model = "synthetic"
    dimension = DIM

    def embed(self, texts: Any, *, kind: Any) -> Any:
        raise AssertionError("the tests give every vector")


def draw(n: int, seed: int = 1) -> np.ndarray:
    """Loose clusters: a point's noise outweighs its centre, so neighbours are hard to tell apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(25, DIM))
    return (centres[rng.integers(0, len(centres), n)] + 3.0 * rng.normal(size=(n, DIM))).astype(np.float32)


def fill(store: RagStore, name: str, data: np.ndarray) -> int:
    store.collections.create(name, embedding_model="synthetic", dimension=DIM)
    docs = [
        {
            "text": f"{name} {d}",
            "chunks": [{"text": f"{name} {i}", "vector": data[i].tolist()} for i in range(d, min(d + 500, len(data)))],
        }
        for d in range(0, len(data), 500)
    ]
    store.documents.add(name, docs)
    store.index.wait()
    return store.components.catalog.resolve(name).id


def breadth(store: RagStore, collection_id: int) -> int:
    index = store.components.vectors
    assert isinstance(index, EmbeddedVectorIndex)
    return int(index._subs[collection_id].index.expansion_search)


@pytest.fixture
def tuned_settings(make_settings: Callable[..., Settings]) -> Settings:
    # No companion model, no Korean analyzer: their loading would be most of these tests' time.
    return make_settings(target_recall=TARGET, companion_model="none", lexical_analyzer="bigram")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tuned_settings: Settings, clock: ManualClock) -> Iterator[RagStore]:
    with RagStore.open(tuned_settings, embedder=NoEmbedder(), clock=clock) as opened:
        opened.index.tuner.sample = SAMPLE
        yield opened


def test_tune_keeps_and_uses_the_smallest_breadth_that_meets_the_target(
    store: RagStore, tuned_settings: Settings, clock: ManualClock
) -> None:
    data = draw(2500)
    kb = fill(store, "kb", data)
    fill(store, "small", draw(100, seed=2))
    assert breadth(store, kb) == tuned_settings.hnsw_expansion_search  # untuned: the configured default

    report = store.index.tune()
    assert report.backend == "embedded" and report.target_recall == TARGET
    tuned, small = report.collections  # by name
    assert (small.collection, small.state, small.ef_search, small.curve) == ("small", "exact", None, [])
    assert tuned.state == "tuned" and tuned.met and tuned.vectors == 2500 and tuned.sample == SAMPLE
    efs = [p.ef for p in tuned.curve]
    assert efs == list(LADDER[: len(efs)]) and tuned.ef_search == efs[-1] >= 32  # a measurable climb
    # Met: the sampled recall is within its standard error of the target or above; no smaller breadth was.
    chosen = tuned.curve[-1]
    assert all(p.recall + p.stderr < TARGET for p in tuned.curve[:-1]) and chosen.recall + chosen.stderr >= TARGET
    assert tuned.recall == tuned.curve[-1].recall and all(p.p50_us > 0 for p in tuned.curve)
    assert breadth(store, kb) == tuned.ef_search

    with store.db.read() as s:
        row = s.scalars(select(IndexTuning)).one()
    assert (row.collection_id, row.backend, row.ef_search, row.vector_count) == (kb, "embedded", tuned.ef_search, 2500)
    assert row.target_recall == TARGET and row.met and row.sample_size == SAMPLE
    assert as_utc(row.tuned_at) == clock.now() and [p["ef"] for p in row.curve] == efs

    # The breadth holds for queries the measurement never saw: fresh draws from the same distribution.
    index = store.components.vectors
    ids, stored = index.get(kb, np.concatenate(list(index.iter_ids(kb))))
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    queries = draw(2700)[2500:]  # the same clusters, points not in the index
    found = 0
    for q in queries:
        truth = set(ids[np.argsort(-(stored @ (q / np.linalg.norm(q))))[:10]].tolist())
        found += len(truth & {h.id for h in index.search(kb, q, 10)})
    assert found / (10 * len(queries)) >= TARGET - 0.03

    store.close()
    with RagStore.open(tuned_settings, embedder=NoEmbedder(), clock=clock) as again:  # another process
        assert breadth(again, kb) == tuned.ef_search
        stored_state = again.index.tuning("kb").collections[0]
        assert stored_state.state == "current" and stored_state.due is None and stored_state.curve == tuned.curve
        with pytest.raises(NotFound, match="collection 'nope' does not exist"):
            again.index.tune("nope")


def test_a_target_out_of_reach_takes_the_smallest_breadth_close_to_the_best(tmp_path: Path) -> None:
    index = EmbeddedVectorIndex(tmp_path)
    index.ensure_collection(CollectionSpec(1, DIM))
    index.upsert(1, np.arange(1, 2501, dtype=np.int64), draw(2500))
    measured = measure(index, 1, 1.0, sample=SAMPLE, ladder=(16, 24, 32, 48))
    assert not measured.met and [p.ef for p in measured.curve] == [16, 24, 32, 48]  # the whole ladder climbed
    best = max(p.recall for p in measured.curve)
    assert measured.ef == next(p.ef for p in measured.curve if p.recall >= best - ACCURACY)


def test_when_a_collection_is_due() -> None:
    now = ManualClock().now()
    row = IndexTuning(target_recall=0.98, vector_count=10_000, tuned_at=now)
    assert due_reason(None, 5_000, 0.98, now) == "never measured"
    assert due_reason(row, 19_999, 0.98, now) is None and due_reason(row, 5_001, 0.98, now) is None
    assert due_reason(row, 20_000, 0.98, now) == "10,000 vectors when measured, 20,000 now"
    assert due_reason(row, 5_000, 0.98, now) == "10,000 vectors when measured, 5,000 now"
    assert due_reason(row, 10_000, 0.99, now) == "the target was 0.98 when measured, it is 0.99 now"
    assert due_reason(row, 10_000, 0.98, now + RETUNE_AFTER - timedelta(seconds=1)) is None
    assert due_reason(row, 10_000, 0.98, now + RETUNE_AFTER) == "measured 30 days ago"


@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])  # the policy is the same on either database
def test_the_server_check_follows_stored_breadths_and_measures_only_what_is_due(
    store: RagStore, clock: ManualClock
) -> None:
    kb = fill(store, "kb", draw(2500))
    dry = run_maintenance(store, "optimize", dry_run=True)
    assert dry is not None
    step = next(s for s in dry.steps if s.name == "search_tuning")
    assert (step.count, step.note) == (1, "would measure kb")

    first = store.index.tune_due().collections[0]
    assert first.state == "tuned" and first.tuned_at == clock.now()
    clock.advance(3600)
    assert store.index.tune_due().collections[0].state == "current"  # measured an hour ago, same size: kept
    done = run_maintenance(store, "optimize")
    assert done is not None
    step = next(s for s in done.steps if s.name == "search_tuning")
    assert (step.count, step.note) == (0, "no collection was due")

    # Another process measured a breadth and stored it: the next check here follows it.
    store.db.write(lambda s: s.execute(update(IndexTuning).values(ef_search=24)))
    assert store.index.tune_due().collections[0].ef_search == 24 and breadth(store, kb) == 24

    clock.advance(RETUNE_AFTER.total_seconds())
    again = store.index.tune_due().collections[0]
    assert again.state == "tuned" and again.ef_search == first.ef_search and again.tuned_at == clock.now()
    assert breadth(store, kb) == first.ef_search

    scheduler = MaintenanceScheduler(store, check_schedule="", check_repair=False, index_tuning=True)
    assert INDEX_TUNING_JOB in scheduler.jobs
    assert INDEX_TUNING_JOB not in MaintenanceScheduler(store, check_schedule="", check_repair=False).jobs


@pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
def test_the_cli_measures_shows_and_refuses_an_unknown_collection(
    store: RagStore, tuned_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, "kb", draw(2500))
    store.close()
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tuned_settings.data_dir))
    monkeypatch.setenv("RAGSTORE_TARGET_RECALL", str(TARGET))
    monkeypatch.setenv("RAGSTORE_COMPANION_MODEL", "none")
    monkeypatch.setenv("RAGSTORE_LEXICAL_ANALYZER", "bigram")
    runner = CliRunner()

    shown = runner.invoke(app, ["index", "tune", "-c", "kb", "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    measured = report["collections"][0]
    assert report["target_recall"] == TARGET and measured["state"] == "tuned" and measured["curve"]
    last = measured["curve"][-1]
    assert measured["ef_search"] == last["ef"] and measured["recall"] + last["stderr"] >= TARGET

    table = runner.invoke(app, ["index", "tune", "--stored"])
    assert table.exit_code == 0, table.output
    assert f"kb: ef_search {measured['ef_search']}, recall@10" in table.output and "<- chosen" in table.output
    assert "measured 20" in table.output  # the stored time, nothing measured

    # A target the graph cannot reach: the line says so, and what would reach further.
    monkeypatch.setenv("RAGSTORE_TARGET_RECALL", "1.0")
    short = runner.invoke(app, ["index", "tune", "-c", "kb"])
    assert short.exit_code == 0, short.output
    line = " ".join(short.output.split())  # as one line, whatever the terminal's width wrapped
    assert "short of the target: the graph itself tops out below it; a denser graph reaches further" in line
    assert "(RAGSTORE_HNSW_EF_CONSTRUCTION=128 took 1M vectors from 0.935 to 0.994; RAGSTORE_HNSW_M less so; " in line
    assert "then `ragstore index rebuild -c kb`)" in line

    unknown = runner.invoke(app, ["index", "tune", "-c", "nope"])
    assert unknown.exit_code == 2 and unknown.output.strip() == "error: collection 'nope' does not exist"


def backend(name: str, tmp_path: Path, **settings: Any) -> VectorIndex:
    try:
        return BACKENDS[name].create(Settings(data_dir=tmp_path / "data", vector_backend=name, **settings))
    except Exception as exc:  # the extra is not installed
        pytest.skip(f"{name}: {exc}")


def test_milvus_tunes_its_hnsw_ef_per_collection(tmp_path: Path) -> None:
    """Milvus Lite past its HNSW threshold: the same measurement, `ef` passed per search (~15 ms each here)."""
    index = backend("milvus", tmp_path, milvus_hnsw_threshold=500)
    try:
        index.ensure_collection(CollectionSpec(1, DIM))
        index.upsert(1, np.arange(1, 601, dtype=np.int64), draw(600))
        assert index.search_mode(1) == "exact"  # FLAT until the flush that switches it
        index.persist()
        assert index.search_mode(1) == "graph"
        measured = measure(index, 1, 0.999, sample=20, ladder=(8, 64))
        assert measured.mode == "graph" and measured.sample == 20 and measured.curve and measured.ef is not None
        assert index.set_expansion_search(1, measured.ef) is None and index.set_expansion_search(1, 32) == measured.ef
        assert len(index.search(1, draw(1, seed=5)[0], 10)) == 10
    finally:
        index.drop_collection(1)
        index.close()


def test_chroma_and_the_memory_index_have_nothing_to_tune(tmp_path: Path) -> None:
    memory = backend("memory", tmp_path)
    memory.ensure_collection(CollectionSpec(1, DIM))
    memory.upsert(1, np.arange(1, 3001, dtype=np.int64), draw(3000))
    assert measure(memory, 1, TARGET).mode == "exact"
    chroma = backend("chroma", tmp_path)
    try:
        chroma.ensure_collection(CollectionSpec(1, DIM))
        chroma.upsert(1, np.arange(1, 51, dtype=np.int64), draw(50))
        measured = measure(chroma, 1, TARGET)
        assert (measured.mode, measured.ef, measured.curve, measured.vectors) == ("fixed", None, [], 50)
        assert chroma.set_expansion_search(1, 64) is None
    finally:
        chroma.close()


def test_an_8_bit_index_is_measured_at_the_depth_its_re_rank_asks_for(
    make_settings: Callable[..., Settings], clock: ManualClock, tmp_path: Path
) -> None:
    """An i8 search asks for `search_depth(10, approximate=True)` candidates and re-ranks them from SQL's float32
    vectors: the true top 10 need only be among those. Counting the graph's own top 10 would measure the
    8-bit rounding, which no breadth repairs."""
    index = EmbeddedVectorIndex(tmp_path / "alone", dtype="i8")
    index.ensure_collection(CollectionSpec(1, DIM))
    index.upsert(1, np.arange(1, 2501, dtype=np.int64), draw(2500))
    ladder = (20, 24, 32, 48, 64, 96, 128)
    shallow = measure(index, 1, TARGET, sample=SAMPLE, ladder=ladder)
    deep = measure(index, 1, TARGET, sample=SAMPLE, ladder=ladder, depth=search_depth(10, approximate=True))
    for top, among in zip(shallow.curve, deep.curve, strict=False):
        assert among.recall >= top.recall
    # Counted in the graph's own order the 8-bit rounding caps recall below the target at every breadth.
    assert not shallow.met and deep.met and deep.curve[0].recall > shallow.curve[0].recall
    with pytest.raises(ValueError, match="at least 10 candidates, got depth 5"):
        measure(index, 1, TARGET, depth=5)
    index.close()

    settings = make_settings(target_recall=TARGET, companion_model="none", lexical_analyzer="bigram", index_dtype="i8")
    with RagStore.open(settings, embedder=NoEmbedder(), clock=clock) as store:
        store.index.tuner.sample = SAMPLE
        kb = fill(store, "kb", draw(2500))
        tuned = store.index.tune().collections[0]
        again = measure(
            store.components.vectors, kb, TARGET, sample=SAMPLE, seed=kb, depth=search_depth(10, approximate=True)
        )
        assert [p.recall for p in tuned.curve] == [p.recall for p in again.curve] and tuned.ef_search == again.ef
