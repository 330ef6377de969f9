"""One shared suite run against every registered VectorIndex backend (vectors/registry.py): today the
in-memory reference, the embedded index, Milvus (Milvus Lite, the same client code a server gets) and Chroma
(the embedded PersistentClient). A new backend is tested by adding its registry entry; one whose extra is
not installed is skipped, naming the extra.

File-keeping backends (`KeepsFiles`) also run the export / verify / place checks that backups rely on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragstore.config import Settings
from ragstore.errors import ConfigError, InvalidInput, NotFound
from ragstore.vectors.base import (
    CollectionSpec,
    IndexFilesDamaged,
    KeepsFiles,
    ReplicaIndex,
    VectorIndex,
    VectorRecord,
)
from ragstore.vectors.embedded import EmbeddedVectorIndex
from ragstore.vectors.registry import BACKENDS, BackendSpec
from servers import ChromaServer, free_port

DIM = 16
Factory = Callable[[], VectorIndex]
FILE_KEEPING = [name for name, spec in BACKENDS.items() if spec.keeps_files]
# Backends that also run against a server of their own here: the settings that point the backend at it.
SERVER_SETTINGS: dict[str, Callable[[ChromaServer], dict[str, Any]]] = {
    "chroma": lambda server: {"chroma_url": server.url},
}


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One `chroma run` for the module (each test drops the collections it made), started on first use."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"), free_port())
    if not server.installed:
        pytest.skip("chroma server: the chroma command is not installed (pip install 'ragstore[chroma]')")
    server.start()
    yield server
    server.stop()


def backend_settings(spec: BackendSpec, tmp_path: Path) -> Settings:
    """Settings choosing `spec`, everything in this test's folder (Milvus moves to HNSW past 40 vectors)."""
    return Settings(data_dir=tmp_path / "data", vector_backend=spec.name, milvus_hnsw_threshold=40)


@pytest.fixture(params=[*BACKENDS, *(f"{name}-server" for name in SERVER_SETTINGS)])
def make_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Opens the backend again at each call (a restart); one that keeps nothing is the same object throughout."""
    name, _, server = str(request.param).partition("-")
    spec = BACKENDS[name]
    settings = backend_settings(spec, tmp_path)
    if server:
        settings = settings.model_copy(update=SERVER_SETTINGS[name](request.getfixturevalue(f"{name}_server")))
    opened: list[VectorIndex] = []

    def open_index() -> VectorIndex:
        if opened and not spec.persistent:
            return opened[0]
        try:
            opened.append(spec.create(settings))
        except ConfigError as exc:
            pytest.skip(f"{spec.name}: {exc}")
        return opened[-1]

    yield open_index
    if server and opened:  # the server outlives the test: leave it empty for the next one
        for collection_id in opened[-1].collection_ids():
            opened[-1].drop_collection(collection_id)
    for index in opened:
        index.close()


@pytest.mark.parametrize("name", list(BACKENDS))
def test_the_spec_says_what_the_index_is(name: str, tmp_path: Path) -> None:
    """What the rest of ragstore asks the spec must be true of the index it builds."""
    spec = BACKENDS[name]
    try:
        index = spec.create(backend_settings(spec, tmp_path))
    except ConfigError as exc:
        pytest.skip(f"{name}: {exc}")
    try:
        assert type(index).name == name
        assert isinstance(index, ReplicaIndex) == spec.process_local == (not index.shared)
        assert isinstance(index, KeepsFiles) == spec.keeps_files
        assert index.is_durable() == spec.persistent
        if spec.keeps_files:
            assert spec.file_keeper() is type(index)
    finally:
        index.close()


def test_a_missing_extra_is_named() -> None:
    def needs_a_package(settings: Settings) -> VectorIndex:
        raise ImportError("No module named 'vectordb'")

    spec = BackendSpec("example", needs_a_package, "a backend behind an extra", extra="example")
    with pytest.raises(ConfigError, match=r"pip install 'ragstore\[example\]'"):
        spec.create(Settings())


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_upsert_search_count(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    data = vectors(50)
    index.upsert(1, np.arange(1, 51, dtype=np.int64), data)
    assert index.count(1) == 50
    hits = index.search(1, data[9], k=3)
    assert hits[0].id == 10 and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_many_answers_each_row_as_search(make_index: Factory) -> None:
    """A search batch's dense sides (search/batch.py): one call, the same hits as a search per row."""
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    data = vectors(50, seed=5)
    index.upsert(1, np.arange(1, 51, dtype=np.int64), data)
    for rows in ([3, 9, 20], [7]):  # a matrix of one row too (usearch answers it as a vector)
        many = index.search_many(1, data[rows], k=4)
        assert len(many) == len(rows)
        for row, hits in zip(rows, many, strict=True):
            alone = index.search(1, data[row], k=4)
            assert [h.id for h in hits] == [h.id for h in alone]
            assert [h.score for h in hits] == pytest.approx([h.score for h in alone], abs=1e-5)
    assert [len(hits) for hits in index.search_many(1, data[:2], k=80)] == [50, 50]
    assert index.search_many(9, data[:2], k=3) == [[], []]


def test_search_keys_answers_as_search_in_arrays(make_index: Factory) -> None:
    """The filtered search's candidates as arrays (search/dense.py): the keys and scores `search` gives."""
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    data = vectors(50, seed=6)
    index.upsert(1, np.arange(1, 51, dtype=np.int64), data)
    for row in (0, 17, 49):
        keys, scores = index.search_keys(1, data[row], k=8)
        alone = index.search(1, data[row], k=8)
        assert keys.dtype == np.int64 and keys.tolist() == [h.id for h in alone]
        assert scores.tolist() == [h.score for h in alone]  # the same doubles: shown scores must not move
    assert [len(a) for a in index.search_keys(9, data[0], k=3)] == [0, 0]
    assert [len(a) for a in index.search_keys(1, data[0], k=0)] == [0, 0]


def test_upsert_is_idempotent_and_replaces(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    a, b = vectors(2, seed=1)
    index.upsert(1, ids(7), a[None])
    index.upsert(1, ids(7), a[None])
    assert index.count(1) == 1
    index.upsert(1, ids(7), b[None])
    assert index.count(1) == 1
    assert index.search(1, b, k=1)[0].score == pytest.approx(1.0, abs=1e-4)


def test_delete_is_idempotent(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    index.upsert(1, ids(1, 2, 3), vectors(3))
    index.delete(1, ids(2, 99))
    index.delete(1, ids(2))
    index.delete(42, ids(1))  # unknown collection: nothing happens
    assert index.count(1) == 2
    assert {int(i) for batch in index.iter_ids(1) for i in batch} == {1, 3}
    assert all(h.id != 2 for h in index.search(1, vectors(3)[1], k=3))


def test_a_missing_collection_reads_as_empty_and_refuses_writes(make_index: Factory) -> None:
    index = make_index()
    assert index.count(9) == 0 and index.search(9, vectors(1)[0], k=3) == [] and index.dimension(9) is None
    assert [int(i) for batch in index.iter_ids(9) for i in batch] == []
    with pytest.raises((NotFound, InvalidInput)):
        index.upsert(9, ids(1), vectors(1))


def test_collections_are_separate(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    index.ensure_collection(CollectionSpec(2, 4))
    index.upsert(1, ids(1), vectors(1))
    index.upsert(2, ids(1), np.ones((1, 4), dtype=np.float32))
    assert index.count(1) == index.count(2) == 1
    with pytest.raises(InvalidInput):
        index.upsert(2, ids(2), vectors(1))
    index.drop_collection(2)
    index.drop_collection(2)
    assert index.count(2) == 0 and index.count(1) == 1


def test_search_restricted_to_allowed_ids(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    data = vectors(100, seed=3)
    index.upsert(1, np.arange(1, 101, dtype=np.int64), data)
    allowed = [5, 50, 95]
    hits = index.search(1, data[0], k=10, allowed_ids=allowed)
    assert sorted(h.id for h in hits) == allowed
    assert index.search(1, data[0], k=10, allowed_ids=[]) == []


def test_persist_and_reopen(make_index: Factory, tmp_path: Path) -> None:
    index = make_index()
    if not index.is_durable():
        pytest.skip("the in-memory index keeps nothing across restarts by design (rebuilt from SQL)")
    index.ensure_collection(CollectionSpec(1, DIM))
    data = vectors(20)
    index.upsert(1, np.arange(1, 21, dtype=np.int64), data)
    index.mark_applied(1, 17)
    index.close()
    again = make_index()
    again.ensure_collection(CollectionSpec(1, DIM))
    assert again.count(1) == 20
    # A replica remembers how far it followed the outbox; a shared store holds every finished operation.
    assert again.applied_seq(1) == (0 if again.shared else 17)
    assert again.search(1, data[4], k=1)[0].id == 5
    assert again.dimension(1) == DIM and again.collection_ids() == [1]


def _written_before_single_threaded_inserts(folder: Path) -> None:
    sidecar = folder / "1.json"
    meta = json.loads(sidecar.read_text())
    assert meta["format"] == 2
    sidecar.write_text(json.dumps({**meta, "format": 1}))


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda folder: (folder / "1.usearch").write_bytes(b"garbage"), id="damaged"),
        # Format 1 files were built with parallel inserts, which can strand vectors (USearch #735).
        pytest.param(_written_before_single_threaded_inserts, id="format-1"),
    ],
)
def test_an_index_file_that_cannot_be_trusted_is_rebuilt(tmp_path: Path, spoil: Callable[[Path], object]) -> None:
    index = EmbeddedVectorIndex(tmp_path / "index")
    index.ensure_collection(CollectionSpec(1, DIM))
    index.upsert(1, ids(1, 2), vectors(2))
    index.mark_applied(1, 5)
    index.close()
    spoil(tmp_path / "index")
    again = EmbeddedVectorIndex(tmp_path / "index")
    again.ensure_collection(CollectionSpec(1, DIM))
    assert again.applied_seq(1) == 0  # unknown: the store rebuilds it from SQL
    assert again.count(1) == 0


def test_dimension_mismatch_is_refused(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(1, DIM))
    with pytest.raises(InvalidInput):
        index.upsert(1, ids(1), np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(InvalidInput):
        index.ensure_collection(CollectionSpec(1, DIM + 1))


def test_get_ids_and_dimensions_for_the_consistency_checker(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(3, DIM))
    data = vectors(30, seed=4)
    index.upsert(3, np.arange(100, 130, dtype=np.int64), data)
    index.delete(3, ids(105))
    got_ids, got = index.get(3, ids(101, 105, 999, 129))
    order = np.argsort(got_ids)
    assert got_ids[order].tolist() == [101, 129]
    assert np.allclose(got[order][0], data[1], atol=1e-2) and np.allclose(got[order][1], data[29], atol=1e-2)
    listed = sorted(int(i) for batch in index.iter_ids(3, batch_size=7) for i in batch)
    assert listed == [i for i in range(100, 130) if i != 105]
    assert index.dimension(3) == DIM and index.dimension(77) is None
    assert 3 in index.collection_ids() and 77 not in index.collection_ids()
    assert index.get(77, ids(1))[0].tolist() == []


def test_records_are_accepted_and_a_growing_collection_stays_searchable(make_index: Factory) -> None:
    index = make_index()
    index.ensure_collection(CollectionSpec(4, DIM))
    data = vectors(60, seed=5)
    records = [
        VectorRecord(document_id=i // 3, content_hash=f"{i:064x}", metadata={"lang": "ko", "n": i}) for i in range(60)
    ]
    index.upsert(4, np.arange(1, 61, dtype=np.int64), data, records)
    index.persist()  # Milvus: flushes, and past its threshold (40 here) moves from FLAT to HNSW
    assert index.count(4) == 60
    assert index.search(4, data[44], k=1)[0].id == 45
    assert index.search(4, data[44], k=3, allowed_ids=[2, 45, 50])[0].id == 45


def test_every_vector_is_reachable_through_the_graph(tmp_path: Path) -> None:
    """Past the exact-search limit a search walks the HNSW graph; a vector inserted by usearch's parallel
    `add` could be stored yet never reached (USearch #735). Built with parallel inserts, this collection
    left 5 or more of its 8,000 vectors unreachable in each of three runs on 2 cores; every one must be its
    own top hit."""
    from ragstore.vectors.embedded import EXACT_SEARCH_LIMIT

    index = EmbeddedVectorIndex(tmp_path / "index")
    index.ensure_collection(CollectionSpec(1, DIM))
    n = EXACT_SEARCH_LIMIT * 4
    data = vectors(n, seed=11)
    keys = np.arange(1, n + 1, dtype=np.int64)
    for start in range(0, n, 500):  # as ingest batches arrive, with some upserted again (an outbox replay)
        index.upsert(1, keys[start : start + 500], data[start : start + 500])
        index.upsert(1, keys[start : start + 20], data[start : start + 20])
    index.delete(1, keys[::50])
    kept = np.ones(n, dtype=bool)
    kept[::50] = False
    unreached = [int(k) for k, v in zip(keys[kept], data[kept], strict=True) if index.search(1, v, k=1)[0].id != k]
    assert unreached == []


@pytest.mark.parametrize("name", FILE_KEEPING)
def test_a_file_keeping_backend_exports_verifies_and_places_its_files(name: str, tmp_path: Path) -> None:
    """What backups rely on: an export holds the saved collections, verify reads their counts back from the
    files and refuses a damaged one, place puts them in a store's directory and sets the old files aside."""
    spec = BACKENDS[name]
    files = spec.file_keeper()
    settings = backend_settings(spec, tmp_path)
    index = spec.create(settings)
    index.ensure_collection(CollectionSpec(1, DIM))
    index.ensure_collection(CollectionSpec(2, DIM))
    index.upsert(1, np.arange(1, 31, dtype=np.int64), vectors(30))
    index.mark_applied(1, 3)
    index.close()
    assert files.files_size(settings.index_dir) > 0 and files.files_size(tmp_path / "nowhere") == 0
    export = tmp_path / "export"
    assert files.export_files(settings.index_dir, [1, 2, 3], export) == {1: 30, 2: 0}  # 3 was never saved
    assert files.verify_files(export) == {1: 30, 2: 0} and files.verify_files(tmp_path / "nowhere") == {}

    elsewhere = tmp_path / "restored" / "index"
    files.place_files(export, elsewhere, aside=None)
    assert not export.exists() and files.verify_files(elsewhere) == {1: 30, 2: 0}
    again = spec.create(settings.model_copy(update={"data_dir": elsewhere.parent}))
    again.ensure_collection(CollectionSpec(1, DIM))
    assert again.count(1) == 30 and again.applied_seq(1) == 3
    again.close()

    aside = tmp_path / "aside" / "index"
    files.place_files(tmp_path / "no-export", elsewhere, aside=aside)
    assert not elsewhere.exists() and files.verify_files(aside) == {1: 30, 2: 0}

    for damaged in [p for p in aside.iterdir() if p.is_file()]:
        damaged.write_bytes(b"garbage")
    with pytest.raises(IndexFilesDamaged, match="cannot be loaded"):
        files.verify_files(aside)
