"""Files by their source (issue 17): one document per file however it was named, duplicates said plainly,
get-or-create collections, a failed ingest that creates nothing, and a sync that mirrors a tree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ragstore import InvalidInput, RagStore, Settings, Unavailable
from ragstore.documents import files as file_run
from ragstore.documents.progress import IngestProgress
from ragstore.errors import Conflict, NotFound

from conftest import CountingEmbedder

REFUND_7 = "# 환불 규정\n\n구매 후 7일 안에 환불을 요청할 수 있다.\n"
REFUND_30 = "# 환불 규정\n\n구매 후 30일 안에 환불을 요청할 수 있다. 영수증이 필요하다.\n"
PLAN = "The business plan allows 600 API requests per minute.\n"
PHOTO = "Photosynthesis lets plants turn sunlight, water and carbon dioxide into glucose and oxygen.\n"


def test_relative_then_absolute_name_is_one_document_replaced(
    store: RagStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.collections.create("kb")
    (tmp_path / "docs").mkdir()
    path = tmp_path / "docs" / "refund.md"
    path.write_text(REFUND_7, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "docs")
    first = store.documents.ingest_paths("kb", ["../docs/./refund.md"]).outcomes[0]
    assert first.status == "added" and first.source_uri == str(path.resolve())
    path.write_text(REFUND_30, encoding="utf-8")
    second = store.documents.ingest_paths("kb", [path.resolve()]).outcomes[0]
    assert (second.status, second.source_uri) == ("replaced", str(path.resolve()))
    docs = store.documents.list("kb")
    assert [d.id for d in docs] == [second.document_id]
    hits = store.search("kb", "환불 기간", k=5).hits
    assert {h.document_id for h in hits} == {second.document_id} and all("7일" not in h.text for h in hits)


def test_a_symlink_is_the_file_it_points_to(store: RagStore, tmp_path: Path) -> None:
    store.collections.create("kb")
    real = tmp_path / "plan.txt"
    real.write_text(PLAN, encoding="utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    store.documents.ingest_paths("kb", [real])
    assert store.documents.ingest_paths("kb", [link]).outcomes[0].status == "unchanged"
    assert len(store.documents.list("kb")) == 1


def test_root_stores_relative_posix_sources_and_refuses_outside(store: RagStore, tmp_path: Path) -> None:
    store.collections.create("kb")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "plan.txt").write_text(PLAN, encoding="utf-8")
    (tmp_path / "other.txt").write_text(PHOTO, encoding="utf-8")
    report = store.documents.ingest_paths("kb", [tmp_path / "tree"], root=tmp_path / "tree")
    assert [o.source_uri for o in report.outcomes] == ["sub/plan.txt"]
    with pytest.raises(InvalidInput, match="outside the root"):
        store.documents.ingest_paths("kb", [tmp_path / "other.txt"], root=tmp_path / "tree")
    with pytest.raises(InvalidInput, match="no such folder"):
        store.documents.ingest_paths("kb", [tmp_path / "other.txt"], root=tmp_path / "nowhere")
    assert len(store.documents.list("kb")) == 1


def test_duplicate_content_is_reported_and_kept_on_request_without_embedding_again(
    store: RagStore, tmp_path: Path, embedder: CountingEmbedder
) -> None:
    store.collections.create("kb")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(PHOTO, encoding="utf-8")
    b.write_text(PHOTO, encoding="utf-8")
    report = store.documents.ingest_paths("kb", [a, b])
    assert [(o.status, o.duplicate_of) for o in report.outcomes] == [("added", None), ("duplicate", str(a.resolve()))]
    again = store.documents.ingest_paths("kb", [b]).outcomes[0]
    assert (again.status, again.duplicate_of) == ("duplicate", str(a.resolve()))
    assert store.documents.ingest_paths("kb", [a]).outcomes[0].status == "unchanged"
    embedded = embedder.texts_embedded
    kept = store.documents.ingest_paths("kb", [b], keep_duplicates=True).outcomes[0]
    assert kept.status == "added" and kept.source_uri == str(b.resolve())
    assert embedder.texts_embedded == embedded  # its chunks share a's embeddings
    assert sorted(d.source_uri for d in store.documents.list("kb")) == sorted([str(a.resolve()), str(b.resolve())])
    # Text documents follow the same rule.
    dup = store.documents.add("kb", [{"text": PHOTO.strip(), "source_uri": "note:1"}])[0]
    assert dup.status == "duplicate" and dup.duplicate_of == str(a.resolve())
    kept_text = store.documents.add("kb", [{"text": PHOTO.strip(), "source_uri": "note:1"}], keep_duplicates=True)[0]
    assert kept_text.status == "added" and embedder.texts_embedded == embedded


def test_collections_get_or_create(store: RagStore) -> None:
    made = store.collections.create("kb", description="docs", exist_ok=True)
    again = store.collections.create("kb", description="docs", exist_ok=True)
    assert again.name == made.name and again.created_at == made.created_at
    assert store.collections.create("kb", exist_ok=True).name == "kb"  # no description given: any is fine
    with pytest.raises(Conflict, match="metric") as exc:
        store.collections.create("kb", metric="dot", exist_ok=True)
    assert exc.value.details["setting"] == "metric"
    with pytest.raises(Conflict, match="description"):
        store.collections.create("kb", description="other", exist_ok=True)
    with pytest.raises(Conflict, match="already exists"):
        store.collections.create("kb")


def test_an_ingest_whose_every_file_fails_creates_nothing(store: RagStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n", encoding="utf-8")

    def create() -> None:
        store.collections.create("kb", exist_ok=True)

    report = store.documents.ingest_paths("kb", [bad, empty], create=create)
    assert report.summary["failed"] == 2
    with pytest.raises(NotFound):
        store.collections.get("kb")
    good = tmp_path / "plan.txt"
    good.write_text(PLAN, encoding="utf-8")
    report = store.documents.ingest_paths("kb", [bad, good], create=create)
    assert report.summary["added"] == 1 and store.collections.get("kb").document_count == 1
    with pytest.raises(NotFound):
        store.documents.ingest_paths("missing", [good])  # no create: unknown collection as before


def _tree(root: Path) -> dict[str, Path]:
    files = {"refund": root / "refund.md", "plan": root / "sub" / "plan.txt", "photo": root / "photo.txt"}
    files["plan"].parent.mkdir(parents=True, exist_ok=True)
    files["refund"].write_text(REFUND_7, encoding="utf-8")
    files["plan"].write_text(PLAN, encoding="utf-8")
    files["photo"].write_text(PHOTO, encoding="utf-8")
    return files


def test_sync_mirrors_the_tree_and_touches_nothing_else(
    store: RagStore, tmp_path: Path, embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.collections.create("kb")
    tree = tmp_path / "tree"
    files = _tree(tree)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("Seoul subway transfers are free within thirty minutes.\n", encoding="utf-8")
    store.documents.ingest_paths("kb", [elsewhere])
    store.documents.add_text("kb", "A note sent as text, about kimchi and cabbage.", source_uri="note:kimchi")
    first = store.documents.sync_paths("kb", [tree])
    assert first.summary["added"] == 3 and first.summary["deleted"] == 0

    files["refund"].write_text(REFUND_30, encoding="utf-8")
    files["photo"].unlink()
    (tree / "new.md").write_text("# New\n\nA file added after the first sync, about tea.\n", encoding="utf-8")
    loads: list[str] = []
    real_load = file_run.load_bytes

    def counted(data: bytes, name: str, **kw: Any) -> Any:
        loads.append(Path(name).name)
        return real_load(data, name, **kw)

    monkeypatch.setattr(file_run, "load_bytes", counted)
    before = sorted((d.id, d.source_uri) for d in store.documents.list("kb"))
    embedded = embedder.texts_embedded
    dry = store.documents.sync_paths("kb", [tree], dry_run=True)
    assert dry.dry_run
    by_source = {Path(o.source_uri).name: o.status for o in dry.outcomes}
    assert by_source == {"refund.md": "replaced", "plan.txt": "unchanged", "photo.txt": "deleted", "new.md": "added"}
    assert sorted((d.id, d.source_uri) for d in store.documents.list("kb")) == before
    assert embedder.texts_embedded == embedded
    assert sorted(loads) == ["new.md", "refund.md"]  # the unchanged file is never read past its hash

    loads.clear()
    report = store.documents.sync_paths("kb", [tree])
    assert {Path(o.source_uri).name: o.status for o in report.outcomes} == by_source
    assert sorted(loads) == ["new.md", "refund.md"]
    assert {k: v for k, v in report.summary.items() if v} == {"added": 1, "replaced": 1, "unchanged": 1, "deleted": 1}
    sources = {d.source_uri for d in store.documents.list("kb")}
    assert sources == {
        str(elsewhere.resolve()),
        "note:kimchi",
        str(files["refund"].resolve()),
        str(files["plan"].resolve()),
        str((tree / "new.md").resolve()),
    }
    assert not [h for h in store.search("kb", "photosynthesis glucose", k=10).hits if "Photosynthesis" in h.text]
    deleted = next(o for o in report.outcomes if o.status == "deleted")
    audited = store.audit.list(action="document.delete")
    assert [e.target for e in audited] == [f"kb/{deleted.document_id}"] and audited[0].outcome == "success"


def test_sync_with_a_root_and_a_glob(store: RagStore, tmp_path: Path) -> None:
    store.collections.create("kb")
    tree = tmp_path / "tree"
    files = _tree(tree)
    report = store.documents.sync_paths("kb", [tree], root=tree)
    assert sorted(o.source_uri for o in report.outcomes) == ["photo.txt", "refund.md", "sub/plan.txt"]
    files["plan"].unlink()
    report = store.documents.sync_paths("kb", [tree / "refund.md"], root=tree)
    # Only the paths given are in scope: sub/plan.txt stays although its file is gone.
    assert {o.source_uri: o.status for o in report.outcomes} == {"refund.md": "unchanged"}
    report = store.documents.sync_paths("kb", [tree / "sub"], root=tree)
    assert {o.source_uri: o.status for o in report.outcomes} == {"sub/plan.txt": "deleted"}
    files["photo"].unlink()
    report = store.documents.sync_paths("kb", [tree], root=tree)  # the root itself: every relative source
    assert {o.source_uri: o.status for o in report.outcomes} == {"refund.md": "unchanged", "photo.txt": "deleted"}
    files["photo"].write_text(PHOTO, encoding="utf-8")
    store.documents.ingest_paths("kb", [files["photo"]])  # absolute source now
    files["refund"].unlink()
    report = store.documents.sync_paths("kb", [str(tree / "*.txt")])
    assert {Path(o.source_uri).name: o.status for o in report.outcomes} == {"photo.txt": "unchanged"}
    with pytest.raises(InvalidInput, match="no file matches"):
        store.documents.sync_paths("kb", [str(tree / "*.pdf")])


def test_progress_counts_files_and_chunks(store: RagStore, tmp_path: Path) -> None:
    store.collections.create("kb")
    files = _tree(tmp_path / "tree")
    seen: list[IngestProgress] = []
    store.documents.ingest_paths("kb", [tmp_path / "tree"], progress=seen.append, batch_size=1)
    last = seen[-1]
    assert (last.files_done, last.files_total) == (3, 3)
    assert last.chunks_embedded == last.chunks_stored == last.chunks_known == 3
    assert last.bytes_done == last.bytes_total == sum(os.path.getsize(p) for p in files.values())
    assert any(p.chunks_stored < p.chunks_embedded for p in seen)  # embedded is reported before the commit
    assert [p.files_done for p in seen] == sorted(p.files_done for p in seen)


def test_a_duplicate_is_not_counted_among_the_chunks_expected(store: RagStore, tmp_path: Path) -> None:
    store.collections.create("kb")
    files = _tree(tmp_path / "tree")
    (tmp_path / "tree" / "zcopy.txt").write_text(files["photo"].read_text(encoding="utf-8"), encoding="utf-8")
    seen: list[IngestProgress] = []
    report = store.documents.ingest_paths("kb", [tmp_path / "tree"], progress=seen.append)
    assert report.summary["duplicate"] == 1
    last = seen[-1]
    assert (last.files_done, last.chunks_known, last.chunks_embedded, last.chunks_stored) == (4, 3, 3, 3)
    assert last.chunks_expected() == 3


class _FailingEmbedder(CountingEmbedder):
    """The real model, until told to fail the way an unreachable embedding service does."""

    failing = False

    def embed(self, texts: Any, *, kind: Any) -> Any:
        if self.failing:
            raise Unavailable("the embedder is unreachable")
        return super().embed(texts, kind=kind)


def test_a_store_that_fails_after_the_collection_was_made_leaves_no_collection(
    settings: Settings, embedder: CountingEmbedder, tmp_path: Path
) -> None:
    failing = _FailingEmbedder(embedder.inner)
    failing.failing = True
    good = tmp_path / "plan.txt"
    good.write_text(PLAN, encoding="utf-8")
    with RagStore.open(settings, embedder=failing) as store:
        with pytest.raises(Unavailable):
            store.documents.ingest_paths("kb", [good], create=lambda: store.collections.create("kb", exist_ok=True))
        assert [c.name for c in store.collections.list()] == []
        store.collections.create("kept")
        with pytest.raises(Unavailable):  # an existing collection is never dropped
            store.documents.ingest_paths("kept", [good])
        assert [c.name for c in store.collections.list()] == ["kept"]
