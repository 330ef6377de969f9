"""Ingest of a real document tree: the first load, then a sync after 1 % of the files changed.

    python bench/ingest.py [--files 60] [--korean 12] [--touch 0.01] [--database-url URL]

The tree is built from documentation every Debian machine has (`/usr/share/doc`: HTML, text, Markdown, PDF
and `.gz`-compressed text, files of at most `--max-file-kib`), chosen deterministically across the kinds,
plus `--korean` generated Korean files encoded in CP949 (the texts of samples/corpus/ko), copied to a
temporary folder so that touching files changes nothing of the system's.

Each run is `ragstore ingest TREE --root TREE -c bench --json` in a child process (what a user runs), on a
fresh data directory (SQLite by default; `--database-url` for PostgreSQL, a fresh schema):
1. the first load: files/s, chunks/s, tokens/s, the child's peak RSS (`wait4`), and the time until the first
   chunk is searchable (polled in the database: the first chunk whose state is `indexed`);
2. `--sync` after appending a line to `--touch` of the text files: the time against the first load (the issue
   asks ≤ 5 %), and the summary, which must say exactly those files were replaced and the rest unchanged
   (only the changed files are read past their hash).
For scale, in the same run: the raw limit, the default embedder alone on the same chunk texts (chunks/s),
and a peer, Chroma's `add` of the same chunks with the same vectors (store cost alone, no embedding), against
ragstore's `documents.add` with vectors.
Prints tables; asserts only that the runs succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

console = Console(width=150)
DOC_ROOT = Path("/usr/share/doc")
KINDS = (".html", ".txt", ".md", ".pdf", ".gz")
TEXT_KINDS = (".html", ".txt", ".md")


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    first_searchable_s: float | None
    summary: dict[str, int]
    chunks: int
    tokens: int


def candidates(max_bytes: int) -> dict[str, list[Path]]:
    """Files of /usr/share/doc by kind; `.gz` only where the inner name is a text kind."""
    found: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for path in sorted(DOC_ROOT.rglob("*")):
        # PDFs up to 8× the cap: a machine has few, and they are larger than the text files
        cap = max_bytes * 8 if path.suffix.lower() == ".pdf" else max_bytes
        if not path.is_file() or path.is_symlink() or path.stat().st_size > cap or path.stat().st_size < 200:
            continue
        suffix = path.suffix.lower()
        if suffix == ".gz":
            if Path(path.stem).suffix.lower() in TEXT_KINDS:
                found[".gz"].append(path)
        elif suffix in found:
            found[suffix].append(path)
    return found


def build_tree(dest: Path, files: int, korean: int, max_bytes: int) -> list[Path]:
    """`files` documentation files spread evenly over the kinds (every k-th of each), and `korean` CP949 files."""
    found = candidates(max_bytes)
    share = max(1, files // len(KINDS))
    chosen: list[Path] = []
    for kind in KINDS:
        pool = found[kind]
        step = max(1, len(pool) // share)
        chosen.extend(pool[::step][:share])
    made = []
    for path in chosen:
        target = dest / path.relative_to(DOC_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        made.append(target)
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "samples" / "corpus" / "ko").glob("*.txt"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "samples" / "corpus" / "ko").glob("*.md"))]
    (dest / "ko").mkdir(parents=True, exist_ok=True)
    for i in range(korean):
        body = f"{texts[i % len(texts)]}\n\n문서 번호 {i}: 이 파일은 CP949로 저장된 한국어 문서입니다.\n"
        target = dest / "ko" / f"문서-{i:03d}.txt"
        target.write_bytes(body.encode("cp949", errors="replace"))
        made.append(target)
    return made


def environment(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTORE_", "DATABASE_URL"))}
    env.update(RAGSTORE_DATA_DIR=str(data_dir), RAGSTORE_AUTH="off", RAGSTORE_LOG_LEVEL="WARNING")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def database_of(env: dict[str, str]) -> str:
    return env.get("DATABASE_URL") or f"sqlite:///{Path(env['RAGSTORE_DATA_DIR']) / 'ragstore.db'}"


def ingest(tree: Path, env: dict[str, str], *extra: str) -> Run:
    """One `ragstore ingest` in a child process, timed, with its peak RSS and the first searchable chunk."""
    ragstore = str(Path(sys.executable).with_name("ragstore"))
    cmd = [ragstore, "ingest", str(tree), "--root", str(tree), "-c", "bench", "--json", *extra]
    first: list[float] = []
    done = threading.Event()
    started = time.perf_counter()

    def poll() -> None:
        engine = create_engine(database_of(env))
        try:
            while not done.is_set():
                try:
                    with engine.connect() as conn:
                        if conn.execute(text("SELECT 1 FROM document_chunks WHERE status = 'indexed' LIMIT 1")).first():
                            first.append(time.perf_counter() - started)
                            return
                except Exception:  # the schema is not there yet
                    pass
                time.sleep(0.05)
        finally:
            engine.dispose()

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        child = subprocess.Popen(cmd, env=env, stdout=out_file, stderr=err_file)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        done.set()
        out_file.seek(0)
        err_file.seek(0)
        stdout, stderr = out_file.read().decode(), err_file.read().decode()
    if child.returncode not in (0, 2):  # 2: some files failed, which the summary says
        raise SystemExit(f"ingest failed ({child.returncode}): {stderr[-2000:]}")
    report = json.loads(stdout)
    chunks, tokens = stored_chunks(env)
    return Run(seconds, usage.ru_maxrss / 1024, first[0] if first else None, report["summary"], chunks, tokens)


def stored_chunks(env: dict[str, str]) -> tuple[int, int]:
    engine = create_engine(database_of(env))
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT count(*), coalesce(sum(token_count), 0) FROM document_chunks")).one()
            return int(row[0]), int(row[1])
    finally:
        engine.dispose()


def touch(files: list[Path], fraction: float) -> list[Path]:
    """Append a line to every k-th text file (about `fraction` of all files)."""
    texts = [p for p in files if p.suffix.lower() in TEXT_KINDS and "ko" not in p.parts[-2:-1]]
    count = max(1, round(len(files) * fraction))
    step = max(1, len(texts) // count)
    touched = texts[::step][:count]
    for path in touched:
        with path.open("ab") as handle:
            handle.write(f"\n\nA line added at {uuid.uuid4().hex} to see a sync replace this file.\n".encode())
    return touched


def chunk_texts(env: dict[str, str], limit: int) -> list[str]:
    engine = create_engine(database_of(env))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT text FROM document_chunks ORDER BY id LIMIT :n"), {"n": limit})
            return [r[0] for r in rows]
    finally:
        engine.dispose()


def raw_and_peer(texts: list[str], scratch: Path) -> dict[str, float]:
    """Chunks/s: the embedder alone; ragstore storing chunks with vectors; Chroma adding the same."""
    import chromadb

    from ragstore import RagStore
    from ragstore.config import Settings

    rates: dict[str, float] = {}
    with RagStore.open(Settings(data_dir=scratch / "store", auth="off", query_log=False)) as store:
        embedder = store.components.embedder
        embedder.embed(texts[:8], kind="document")  # the model is loaded
        started = time.perf_counter()
        vectors = np.asarray(embedder.embed(texts, kind="document"), dtype=np.float32)
        rates["the embedder alone (the raw limit)"] = len(texts) / (time.perf_counter() - started)
        store.collections.create("peer")
        docs = [
            {"text": t, "source_uri": f"chunk-{i}", "chunks": [{"text": t, "vector": v.tolist()}]}
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ]
        started = time.perf_counter()
        for start in range(0, len(docs), 64):
            store.documents.add("peer", docs[start : start + 64])
        rates["ragstore documents.add with vectors (store only)"] = len(texts) / (time.perf_counter() - started)
    client = chromadb.PersistentClient(path=str(scratch / "chroma"))
    collection = client.create_collection("peer", embedding_function=None, metadata={"hnsw:space": "cosine"})
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        part = slice(start, start + 64)
        collection.add(
            ids=[f"chunk-{i}" for i in range(start, min(start + 64, len(texts)))],
            documents=texts[part],
            embeddings=vectors[part],
        )
    rates["Chroma add with vectors (store only)"] = len(texts) / (time.perf_counter() - started)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60, help="documentation files to copy")
    parser.add_argument("--korean", type=int, default=12, help="generated Korean CP949 files")
    parser.add_argument("--max-file-kib", type=int, default=48)
    parser.add_argument("--touch", type=float, default=0.01, help="share of the files changed before the sync")
    parser.add_argument("--peer-chunks", type=int, default=400, help="chunks for the raw-limit and peer rows")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL URL (a fresh database) instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragstore-ingest-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        files = build_tree(tree, args.files, args.korean, args.max_file_kib * 1024)
        size = sum(p.stat().st_size for p in files)
        kinds = {k: sum(1 for p in files if p.suffix.lower() == k) for k in KINDS}
        console.print(f"tree: {len(files)} files, {size / 1e6:.1f} MB, by kind {kinds}")
        env = environment(work / "data", args.database_url)
        subprocess.run(
            [str(Path(sys.executable).with_name("ragstore")), "init"], env=env, check=True, capture_output=True
        )
        first = ingest(tree, env)
        touched = touch(files, args.touch)
        synced = ingest(tree, env, "--sync")
        rates = raw_and_peer(chunk_texts(env, args.peer_chunks), work / "peer")

    table = Table(title=f"ragstore ingest of {len(files)} files ({size / 1e6:.1f} MB), {args.database_url or 'SQLite'}")
    for col in ("run", "s", "files/s", "chunks/s", "tokens/s", "peak RSS MiB", "first searchable s", "summary"):
        table.add_column(col, justify="left" if col in ("run", "summary") else "right")
    for name, run in (("first load", first), (f"--sync after touching {len(touched)} files", synced)):
        table.add_row(
            name,
            f"{run.seconds:.1f}",
            f"{len(files) / run.seconds:.2f}",
            f"{run.chunks / run.seconds:.1f}" if name == "first load" else "",
            f"{run.tokens / run.seconds:,.0f}" if name == "first load" else "",
            f"{run.peak_rss_mib:.0f}",
            f"{run.first_searchable_s:.1f}" if run.first_searchable_s is not None and name == "first load" else "",
            " ".join(f"{k} {v}" for k, v in run.summary.items() if v),
        )
    console.print(table)
    console.print(
        f"sync / first load: {synced.seconds / first.seconds:.1%} (the issue asks ≤ 5 %); "
        f"{first.chunks:,} chunks, {first.tokens:,} tokens stored"
    )
    expected = {"replaced": len(touched), "unchanged": len(files) - len(touched)}
    got = {k: synced.summary.get(k, 0) for k in expected}
    console.print(f"sync summary {got}, expected {expected}: {'as expected' if got == expected else 'DIFFERENT'}")
    table = Table(title="for scale, the same chunks in this process (chunks/s)")
    table.add_column("what")
    table.add_column("chunks/s", justify="right")
    table.add_column("ingest's first load vs this", justify="right")
    ingest_rate = first.chunks / first.seconds
    for name, rate in rates.items():
        table.add_row(name, f"{rate:,.1f}", f"{ingest_rate / rate:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
