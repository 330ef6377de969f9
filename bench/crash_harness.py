"""Fault injection: a child process ingests and deletes documents, SIGKILL lands at a random instant, and the
reopened store must have lost nothing it acknowledged and kept nothing it deleted.

    python bench/crash_harness.py                                  # 200 kill points, embedded index, SQLite
    python bench/crash_harness.py --kills 50 --backend milvus      # Milvus Lite
    python bench/crash_harness.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/crash_harness.py --seed 7 --kills 12              # replay the operations of a failed run

Each kill point: `tests/harness_child.py` opens the store (its sync worker on, the index saved every 0.5 s)
and loops forever, adding 1-3 documents at a time (1-4 chunks each, with given vectors: no embedding
model is loaded) and sometimes deleting an earlier one. Before each call it journals an intent, after the
call returns an acknowledgement, each line fsynced. The parent waits a random time after the child is
ready, kills it with SIGKILL, opens the store itself (which runs recovery) and asserts:

- every acknowledged document not deleted since is listed, whole and indexed, and a dense search with one
  of its own chunk vectors returns that chunk as the top hit (k=1);
- no deleted document is listed or returned by a search;
- an operation that was in flight (intent, no acknowledgement) either happened or did not, wholly;
- the consistency checker (`ragstore check`) reports zero problems and the outbox holds nothing pending.

Every kill point reuses the same data directory, so the store accumulates. The documents searched are
those of the last kill point plus a random sample of older ones; presence is checked for all of them.
The run is seeded: the child's operations and the waits follow from `--seed`; where the kill lands in
them does not, it is real time. Prints a table; exits 1 if any kill point failed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import random
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.schemas import DocumentInfo

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "harness_child.py"
COLLECTION = "kb"
MODEL = "harness-vectors"
DIM = 16
JOURNAL = "harness-journal.log"
CHILD_LOG = "harness-child.err"
READY_TIMEOUT_S = 120.0


class NoEmbedder:
    """Every vector is given; a call to embed would be a bug in the harness."""

    backend = "none"
    model = "harness-no-embedder"
    dimension = DIM

    def embed(self, texts: Any, *, kind: Any) -> Any:
        raise AssertionError("the crash harness gives every vector; nothing may be embedded")


def harness_settings(data_dir: Path, backend: str, database_url: str | None = None) -> Settings:
    """The settings of the child and of the parent that checks after it: the same store, the same way."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        vector_backend=backend,
        index_persist_interval_s=0.5,  # the worker saves the index at random moments too
        sync_poll_interval_s=0.2,
        lexical_analyzer="bigram",  # no dictionary to load: the child is ready sooner
        # No second model to load and run on every add: the kills land among many calls, not in one encode.
        # Its rows go in the chunks' own transaction, so what this harness proves covers them too.
        companion_model="none",
        query_log=False,
        check_schedule="",
    )


def chunk_vector(source_uri: str, ordinal: int) -> NDArray[np.float32]:
    """A unit vector that follows from the document and the chunk alone, so the parent can search for it."""
    digest = hashlib.blake2b(f"{source_uri}#{ordinal}".encode(), digest_size=8).digest()
    v = np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def document(source_uri: str, chunks: int) -> dict[str, Any]:
    """The input of one generated document (its text is unique, so no ingest is ever `unchanged`)."""
    words = source_uri.replace("-", " ")
    texts = [f"{source_uri} part {j}: harness text about item {words} {j}" for j in range(chunks)]
    return {
        "text": "\n\n".join(texts),
        "title": source_uri,
        "source_uri": source_uri,
        "chunks": [{"text": t, "vector": chunk_vector(source_uri, j)} for j, t in enumerate(texts)],
    }


def all_documents(store: RagStore) -> Iterator[DocumentInfo]:
    offset = 0
    while True:
        page = store.documents.list(COLLECTION, limit=10_000, offset=offset)
        yield from page
        if len(page) < 10_000:
            return
        offset += len(page)


def index_diagnosis(store: RagStore, doc: Doc, ordinal: int) -> str:
    """Why a search missed a chunk: the index lacks it, holds another vector, or holds it where the graph
    search does not reach (which an exact search over the index's own vectors tells apart)."""
    collection_id = store.components.catalog.resolve(COLLECTION).id
    chunks = store.documents.get(COLLECTION, doc.doc_id, with_chunks=True).chunks or []
    chunk_id = next((c.id for c in chunks if c.ordinal == ordinal), None)
    if chunk_id is None:
        return f"document {doc.doc_id} has no chunk {ordinal}"
    want = chunk_vector(doc.uri, ordinal)
    held_ids, held = store.components.vectors.get(collection_id, np.asarray([chunk_id], dtype=np.int64))
    if not len(held_ids):
        return f"chunk {chunk_id} is not in the index, of {store.components.vectors.count(collection_id)} vectors"
    similarity = float(np.dot(held[0], want) / (np.linalg.norm(held[0]) or 1.0))
    ids, vectors = store.components.vectors.get(
        collection_id, np.concatenate(list(store.components.vectors.iter_ids(collection_id)))
    )
    exact = int(ids[int(np.argmax(vectors @ want))])
    return (
        f"chunk {chunk_id} is in the index with cosine {similarity:.4f} to its vector, of "
        f"{store.components.vectors.count(collection_id)} vectors; an exact search over them returns chunk {exact}"
    )


def release_milvus_lite(settings: Settings) -> None:
    """Milvus Lite keeps its server (and the folder's lock) for the process's life; free it for the child."""
    if settings.vector_backend != "milvus" or "://" in settings.milvus_location:
        return
    from milvus_lite.server_manager import server_manager_instance  # type: ignore[import-untyped]

    server_manager_instance.release_server(settings.milvus_location)


@dataclass
class Doc:
    uri: str
    doc_id: int
    chunks: int


@dataclass
class KillPoint:
    index: int
    child_seed: int
    wait_s: float
    ready_s: float = 0.0  # spawn to ready
    operations: int = 0  # calls the child started
    adds_acked: int = 0
    deletes_acked: int = 0
    half_present: int = 0  # documents of an unacknowledged call found present after recovery
    half_absent: int = 0
    recovery_s: float = 0.0
    rebuilt: int = 0
    replayed: int = 0
    applied_pending: int = 0
    documents: int = 0  # listed after recovery
    searched: int = 0
    problems: int = 0
    failures: list[str] = field(default_factory=list)


class Harness:
    """Kill points against one data directory; the model of what must (not) be there carries over."""

    def __init__(
        self,
        data_dir: Path,
        backend: str = "embedded",
        database_url: str | None = None,
        *,
        seed: int = 0,
        wait_s: tuple[float, float] = (0.3, 3.0),
        sample: int = 40,
    ) -> None:
        self.data_dir = data_dir
        self.backend = backend
        self.database_url = database_url
        self.settings = harness_settings(data_dir, backend, database_url)
        self.seed = seed
        # Two streams: the waits follow from the seed alone, whatever the sampling drew before them.
        self.wait_rng = random.Random(seed)
        self.rng = random.Random(seed + 1)
        self.wait_s = wait_s
        self.sample = sample
        self.present: dict[str, Doc] = {}  # acknowledged (or found after recovery), not deleted
        self.absent: dict[str, int | None] = {}  # deleted, or an add that did not happen
        self.journal = data_dir / JOURNAL
        self.journal_offset = 0
        self.kills = 0

    def where(self, kp: KillPoint) -> str:
        return (
            f"seed={self.seed} backend={self.backend} db={'postgresql' if self.database_url else 'sqlite'} "
            f"kill point {kp.index} (child seed {kp.child_seed}, killed {kp.wait_s:.2f} s after ready)"
        )

    def setup(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = RagStore.open(self.settings, embedder=NoEmbedder())
        try:
            if COLLECTION not in {c.name for c in store.collections.list()}:
                store.collections.create(COLLECTION, embedding_model=MODEL, dimension=DIM)
        finally:
            store.close()
            release_milvus_lite(self.settings)

    def run(self, kills: int, on_result: Callable[[KillPoint], None] | None = None) -> list[KillPoint]:
        if self.kills == 0:
            self.setup()
        results = []
        for _ in range(kills):
            kp = self.kill_point()
            results.append(kp)
            if on_result is not None:
                on_result(kp)
        return results

    # -- one kill point ----------------------------------------------------------------------------------------
    def kill_point(self) -> KillPoint:
        index = self.kills
        self.kills += 1
        kp = KillPoint(index=index, child_seed=self.seed * 100_000 + index, wait_s=self.wait_rng.uniform(*self.wait_s))
        self._trim_journal()
        try:
            self._run_child(kp)
        except Exception as exc:
            kp.failures.append(f"{self.where(kp)}: the child did not run: {exc}")
            return kp
        added, deleted, maybe_added, maybe_deleted = self._read_journal(kp)
        try:
            self._verify(kp, added, deleted, maybe_added, maybe_deleted)
        except Exception as exc:  # recovery itself failed: the store does not open, or a call in it raised
            kp.failures.append(f"{self.where(kp)}: {type(exc).__name__}: {exc}")
        return kp

    def _trim_journal(self) -> None:
        """A line the kill cut short is dropped, so the next child's first line starts on a line of its own."""
        if not self.journal.exists():
            return
        data = self.journal.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with self.journal.open("r+b") as f:
                f.truncate(len(whole))
                os.fsync(f.fileno())
        self.journal_offset = min(self.journal_offset, len(whole))

    def _run_child(self, kp: KillPoint) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        err_path = self.data_dir / CHILD_LOG
        started = time.perf_counter()
        with err_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(CHILD), str(self.data_dir), self.backend, str(kp.child_seed)],
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
            )
        try:
            assert proc.stdout is not None
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                if not sel.select(READY_TIMEOUT_S):
                    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s")
                line = proc.stdout.readline().decode().strip()
            if line != "ready":
                proc.wait(30)
                raise RuntimeError(f"exited with {proc.returncode} before it was ready: {self._child_log()}")
            kp.ready_s = time.perf_counter() - started
            time.sleep(kp.wait_s)
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before the kill: {self._child_log()}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            if proc.returncode != -signal.SIGKILL:
                raise RuntimeError(f"exited with {proc.returncode}, not by SIGKILL: {self._child_log()}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            proc.stdout.close()  # type: ignore[union-attr]

    def _child_log(self) -> str:
        text = (self.data_dir / CHILD_LOG).read_text(errors="replace").strip()
        return text[-3000:] or "(no output on stderr)"

    def _read_journal(self, kp: KillPoint) -> tuple[list[str], list[str], dict[str, int], dict[str, int]]:
        """This kill point's lines: what was acknowledged, and what was in flight when the kill landed."""
        with self.journal.open("rb") as f:
            f.seek(self.journal_offset)
            data = f.read()
        self.journal_offset += len(data)
        added: list[str] = []
        deleted: list[str] = []
        maybe_added: dict[str, int] = {}  # uri -> chunks it was given
        maybe_deleted: dict[str, int] = {}  # uri -> document id
        for raw in data.decode().splitlines():
            kind, *args = raw.split()
            if kind == "intent-add":
                kp.operations += 1
                maybe_added.update((uri, int(n)) for uri, n in (a.rsplit(":", 1) for a in args))
            elif kind == "added":
                uri, doc_id, chunks = args[0], int(args[1]), int(args[2])
                maybe_added.pop(uri, None)
                self.present[uri] = Doc(uri, doc_id, chunks)
                added.append(uri)
            elif kind == "intent-delete":
                kp.operations += 1
                maybe_deleted[args[1]] = int(args[0])
            elif kind == "deleted":
                doc_id, uri = int(args[0]), args[1]
                maybe_deleted.pop(uri, None)
                known = self.present.pop(uri, None)
                if known is None or known.doc_id != doc_id:
                    kp.failures.append(f"{self.where(kp)}: the child deleted {uri} (id {doc_id}), unknown here")
                self.absent[uri] = doc_id
                deleted.append(uri)
        kp.adds_acked, kp.deletes_acked = len(added), len(deleted)
        return added, deleted, maybe_added, maybe_deleted

    def _verify(
        self,
        kp: KillPoint,
        added: list[str],
        deleted: list[str],
        maybe_added: dict[str, int],
        maybe_deleted: dict[str, int],
    ) -> None:
        fail = kp.failures.append
        where = self.where(kp)
        started = time.perf_counter()
        store = RagStore.open(self.settings, embedder=NoEmbedder())
        kp.recovery_s = time.perf_counter() - started
        try:
            rec = store.recovery
            kp.rebuilt, kp.replayed, kp.applied_pending = (
                len(rec.rebuilt_collections),
                rec.replayed_operations,
                rec.applied_pending,
            )
            listed = {d.source_uri: d for d in all_documents(store)}
            kp.documents = len(listed)
            to_search = list(added)
            to_miss = list(deleted)
            # The call in flight: either outcome is right (a document wholly there, or not at all), and from
            # now on it is what the store says.
            for uri, chunks in maybe_added.items():
                if uri in listed:
                    kp.half_present += 1
                    self.present[uri] = Doc(uri, listed[uri].id, chunks)
                    to_search.append(uri)
                else:
                    kp.half_absent += 1
                    self.absent[uri] = None
                    to_miss.append(uri)
            for uri, doc_id in maybe_deleted.items():
                if uri in listed:
                    kp.half_present += 1
                    to_search.append(uri)
                else:
                    kp.half_absent += 1
                    self.present.pop(uri, None)
                    self.absent[uri] = doc_id
                    to_miss.append(uri)

            for uri, doc in list(self.present.items()):
                info = listed.get(uri)
                if info is None:
                    fail(f"{where}: acknowledged document {uri} (id {doc.doc_id}) is missing after recovery")
                    self.present.pop(uri)
                    self.absent[uri] = doc.doc_id
                    continue
                if info.id != doc.doc_id or info.chunk_count != doc.chunks:
                    fail(
                        f"{where}: document {uri} is id {info.id} with {info.chunk_count} chunks, "
                        f"acknowledged as id {doc.doc_id} with {doc.chunks}"
                    )
                if info.index_state != "indexed":
                    fail(f"{where}: document {uri} (id {info.id}) is {info.index_state!r} after recovery")
            for uri in set(listed) - set(self.present):
                was = "deleted" if uri in self.absent else "never acknowledged"
                fail(f"{where}: document {uri} (id {listed[uri].id}, {was}) is listed after recovery")
                info = listed[uri]
                self.absent.pop(uri, None)
                self.present[uri] = Doc(uri, info.id, info.chunk_count)

            recent, recently_gone = set(to_search), set(to_miss)
            older = [u for u in self.present if u not in recent]
            to_search += self.rng.sample(older, min(self.sample, len(older)))
            gone = [u for u in self.absent if u not in recently_gone]
            to_miss += self.rng.sample(gone, min(self.sample, len(gone)))
            for uri in to_search:
                expected = self.present.get(uri)
                if expected is None:
                    continue  # reported missing above
                ordinal = self.rng.randrange(expected.chunks)
                hits = store.search(COLLECTION, vector=chunk_vector(uri, ordinal).tolist(), k=1, mode="dense").hits
                kp.searched += 1
                if not hits or (hits[0].source_uri, hits[0].ordinal) != (uri, ordinal):
                    top = f"{hits[0].source_uri} chunk {hits[0].ordinal}" if hits else "nothing"
                    fail(
                        f"{where}: a search by {uri} chunk {ordinal}'s own vector returned {top} "
                        f"({index_diagnosis(store, expected, ordinal)})"
                    )
            for uri in to_miss:
                hits = store.search(COLLECTION, vector=chunk_vector(uri, 0).tolist(), k=3, mode="dense").hits
                kp.searched += 1
                if any(h.source_uri == uri for h in hits):
                    fail(f"{where}: deleted document {uri} is returned by search")

            report = store.consistency.check()
            assert report is not None
            kp.problems = int(report.problems or 0)
            if kp.problems:
                found = {k: n for k, n in report.counts.items() if n}
                fail(f"{where}: the consistency check reports {kp.problems} problems: {found}")
            outbox = store.index.outbox_counts()
            if outbox.pending or outbox.dead:
                fail(f"{where}: the outbox holds {outbox} after recovery")
        finally:
            store.close()
            release_milvus_lite(self.settings)


# -- the long run -------------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def summary_table(results: list[KillPoint], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    recovery = [r.recovery_s * 1000 for r in results]
    rows = [
        ("kill points", len(results)),
        ("child operations started", sum(r.operations for r in results)),
        ("documents acknowledged", sum(r.adds_acked for r in results)),
        ("deletes acknowledged", sum(r.deletes_acked for r in results)),
        ("half-done: found present", sum(r.half_present for r in results)),
        ("half-done: found absent", sum(r.half_absent for r in results)),
        ("child start to ready, median s", f"{statistics.median(r.ready_s for r in results):.2f}" if results else "-"),
        ("kill after ready, median s", f"{statistics.median(r.wait_s for r in results):.2f}" if results else "-"),
        ("documents in the store at the end", results[-1].documents if results else 0),
        ("searches checked", sum(r.searched for r in results)),
        ("recoveries that rebuilt a collection", sum(1 for r in results if r.rebuilt)),
        ("recoveries that replayed operations", sum(1 for r in results if r.replayed)),
        ("recoveries that applied pending writes", sum(1 for r in results if r.applied_pending)),
        ("recovery (open) p50 ms", f"{percentile(recovery, 50):.0f}"),
        ("recovery (open) max ms", f"{max(recovery, default=0):.0f}"),
        ("check problems (must be 0)", sum(r.problems for r in results)),
        ("kill points failed", sum(1 for r in results if r.failures)),
        ("failures", sum(len(r.failures) for r in results)),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def main() -> int:
    from rich.console import Console

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--backend", choices=["embedded", "milvus"], default="embedded")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL; default: SQLite in the data directory")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--min-wait", type=float, default=0.3)
    parser.add_argument("--max-wait", type=float, default=3.0)
    parser.add_argument("--sample", type=int, default=40, help="older documents searched per kill point")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary folder, kept on failure")
    args = parser.parse_args()
    if args.backend == "milvus":
        import pymilvus  # noqa: F401  (its import configures its loggers: quiet them after it)

        logging.getLogger("pymilvus").setLevel(logging.ERROR)  # Lite's query iterator warns on every check
    console = Console()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="ragstore-crash-")) / "data"
    db = "sqlite"
    if args.database_url:
        sys.path.insert(0, str(ROOT / "tests"))
        from pgtools import create_schema, drop_schema

        schema, url = create_schema(args.database_url)
        db = "postgresql"
    else:
        schema, url = None, None
    console.print(
        f"seed {seed}, {args.kills} kill points, backend {args.backend}, {db}, data in {data_dir}", soft_wrap=True
    )
    harness = Harness(data_dir, args.backend, url, seed=seed, wait_s=(args.min_wait, args.max_wait), sample=args.sample)

    def progress(kp: KillPoint) -> None:
        mark = "[red]FAIL[/red]" if kp.failures else "ok"
        console.print(
            f"kill {kp.index + 1:>4}/{args.kills} {mark} after {kp.wait_s:4.2f} s: {kp.operations:3d} calls, "
            f"+{kp.adds_acked} -{kp.deletes_acked}, half-done {kp.half_present}/{kp.half_absent}, "
            f"recovery {kp.recovery_s * 1000:4.0f} ms, {kp.documents} documents",
            highlight=False,
            soft_wrap=True,
        )
        for failure in kp.failures:
            console.print(f"  [red]{failure}[/red]", highlight=False, soft_wrap=True)

    started = time.perf_counter()
    try:
        results = harness.run(args.kills, progress)
    finally:
        if schema is not None:
            drop_schema(args.database_url, schema)
    console.print(summary_table(results, f"crash harness: {args.backend}, {db}, seed {seed}"))
    console.print(f"{time.perf_counter() - started:.0f} s", highlight=False)
    failed = [f for r in results for f in r.failures]
    if failed:
        console.print(f"[red]{len(failed)} failures[/red]; data kept in {data_dir}")
        return 1
    if args.data_dir is None:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
