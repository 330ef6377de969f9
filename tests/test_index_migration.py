"""`ragstore index migrate`: the vectors move between backends from SQL alone (no embedding call), the move
is verified before the store switches, an interrupted move resumes, and a setting that names the old
backend afterwards is refused with the command to run."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.embeddings.base import EmbedKind
from ragstore.embeddings.local import LocalEmbedder
from ragstore.errors import ConfigError, InvalidInput
from ragstore.vectors import migration
from ragstore.vectors.registry import migration_targets

from conftest import CountingEmbedder

TEXTS = [
    "전세 보증금을 돌려받으려면 임대차 계약 만료 전에 집주인에게 알리세요.",
    "Backups older than 30 days are pruned every night at 03:00.",
    "김장은 보통 입동 무렵에 하며 배추 속에 양념을 넣는다.",
    "The KX-720 router resets after the button is held for ten seconds.",
    "연말정산 서류는 1월 말까지 회사에 제출해야 한다.",
    "Sourdough needs a starter fed twice a day at room temperature.",
]
QUERIES = ["보증금 반환", "when are old backups deleted", "김장 시기", "router reset", "연말정산 마감", "bread starter"]


def answers(store: RagStore) -> list[list[str]]:
    return [[h.title for h in store.search("kb", q, k=3, mode="dense").hits] for q in QUERIES]


class DocumentCounter(CountingEmbedder):
    """Counts the texts embedded as documents (queries are embedded by every search)."""

    documents = 0

    def embed(self, texts: Sequence[str], *, kind: EmbedKind) -> NDArray[np.float32]:
        if kind == "document":
            self.documents += len(texts)
        return super().embed(texts, kind=kind)


def test_vectors_move_embedded_milvus_chroma_and_back_without_embedding(
    make_settings: Callable[..., Settings], local_embedder: LocalEmbedder
) -> None:
    embedder = DocumentCounter(local_embedder)
    with RagStore.open(make_settings(), embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add("kb", [{"text": t, "title": f"t{i}"} for i, t in enumerate(TEXTS)])
        before = answers(store)
    embedded_texts = embedder.documents
    # Every registered target, then back to where the store started (embedded, milvus, chroma, embedded today).
    start = make_settings().vector_backend
    tour = [t for t in migration_targets() if t != start] + [start]
    for notes, target in enumerate(tour):
        with RagStore.open(make_settings(), embedder=embedder) as store:
            report = store.index.migrate(target)
            assert report.target == target and not report.resumed
            assert report.counts["kb"]["target"] == report.counts["kb"]["sql_indexed"] == len(TEXTS) + notes
            assert report.agreement["kb"] >= 0.9
        # A store opened with no backend setting follows the switch.
        with RagStore.open(make_settings(), embedder=embedder) as store:
            assert store.components.vectors.name == target
            assert [a[0] for a in answers(store)] == [b[0] for b in before]
            report_ = store.consistency.check()
            assert report_ is not None and report_.problems == 0
            store.documents.add_text("kb", f"A new note written on {target}.", title=f"new-{target}")
            assert store.search("kb", f"new note {target}", k=1, mode="dense").hits[0].title == f"new-{target}"
    # Only the new notes were embedded, one per move: every move came from the embeddings SQL holds.
    assert embedded_texts == len(TEXTS) and embedder.documents == embedded_texts + len(tour)


def test_a_setting_that_disagrees_with_the_switch_is_refused(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> None:
    with RagStore.open(make_settings(), embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add_text("kb", TEXTS[0], title="a")
        store.index.migrate("chroma")
    with pytest.raises(ConfigError, match=r"index migrate --to embedded"):
        RagStore.open(make_settings(vector_backend="embedded"), embedder=embedder)
    with RagStore.open(make_settings(vector_backend="chroma"), embedder=embedder) as store:
        assert store.components.vectors.name == "chroma"
        with pytest.raises(InvalidInput, match="already in chroma"):
            store.index.migrate("chroma")
        with pytest.raises(InvalidInput, match="--to must be"):
            store.index.migrate("faiss")


def test_an_interrupted_migration_resumes_where_it_stopped(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragstore.vectors.chroma import ChromaVectorIndex

    with RagStore.open(make_settings(), embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add("kb", [{"text": t, "title": f"t{i}"} for i, t in enumerate(TEXTS)])
        before = answers(store)
        monkeypatch.setattr(migration, "BATCH", 2)
        real_upsert = ChromaVectorIndex.upsert
        calls = {"n": 0}

        def dies_on_the_third_batch(self: ChromaVectorIndex, *args: object, **kwargs: object) -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt  # the operator pressed Ctrl-C, or the process was killed
            real_upsert(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(ChromaVectorIndex, "upsert", dies_on_the_third_batch)
        with pytest.raises(KeyboardInterrupt):
            store.index.migrate("chroma")
        monkeypatch.setattr(ChromaVectorIndex, "upsert", real_upsert)
        assert store.components.vectors.name == "embedded"  # nothing was switched
    with RagStore.open(make_settings(), embedder=embedder) as store:
        assert store.components.vectors.name == "embedded"
        report = store.index.migrate("chroma")
        assert report.resumed and report.copied["kb"] == 2  # the first two batches were not copied again
        assert report.counts["kb"]["target"] == len(TEXTS)
    with RagStore.open(make_settings(), embedder=embedder) as store:
        assert store.components.vectors.name == "chroma" and answers(store) == before


def test_writes_after_the_copy_are_levelled_before_the_switch(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document added and one deleted while the copy runs are caught up by the levelling step."""
    with RagStore.open(make_settings(), embedder=embedder) as store:
        store.collections.create("kb")
        store.documents.add("kb", [{"text": t, "title": f"t{i}"} for i, t in enumerate(TEXTS)])
        real_level = migration.IndexMigration._level

        def write_meanwhile(self: migration.IndexMigration, *args: object) -> int:
            if not getattr(self, "_wrote", False):
                self._wrote = True  # type: ignore[attr-defined]
                store.documents.add_text("kb", "A late note about the migration window.", title="late")
                store.documents.delete("kb", store.documents.list("kb")[0].id)
            return real_level(self, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(migration.IndexMigration, "_level", write_meanwhile)
        report = store.index.migrate("milvus")
        assert report.levelled["kb"] == 2 and report.counts["kb"]["target"] == len(TEXTS)
    with RagStore.open(make_settings(), embedder=embedder) as store:
        titles = [h.title for h in store.search("kb", "late note migration window", k=len(TEXTS), mode="dense").hits]
        assert titles[0] == "late" and "t0" not in titles
        assert np.isfinite(store.search("kb", "anything", k=1, mode="dense").hits[0].score)
