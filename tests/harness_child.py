"""Child of the fault-injection harness (bench/crash_harness.py): ingests and deletes documents until killed.

Usage: python harness_child.py DATA_DIR BACKEND SEED   (DATABASE_URL from the environment, if set)

Every call is journalled in DATA_DIR twice, each line fsynced: an intent before it starts, an
acknowledgement after it returns. The parent kills this process with SIGKILL at a random instant.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from ragstore import RagStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from crash_harness import COLLECTION, JOURNAL, NoEmbedder, all_documents, document, harness_settings

DELETE_SHARE = 0.3  # of the calls; the rest add documents (1-3 at a time)
FULL = 4000  # documents: above, deletes take the larger share, so a long run levels off
FULL_DELETE_SHARE = 0.75  # an add brings 2 documents on average
NO_WAIT_SHARE = 0.2  # of the adds: returned once stored, indexed by the worker (`wait=False`)


def main() -> None:
    data_dir, backend, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    settings = harness_settings(data_dir, backend, os.environ.get("DATABASE_URL"))
    store = RagStore.open(settings, embedder=NoEmbedder(), start_worker=True)
    alive = [(d.id, d.source_uri) for d in all_documents(store)]
    journal = (data_dir / JOURNAL).open("a", encoding="utf-8")

    def note(line: str) -> None:
        journal.write(line + "\n")
        journal.flush()
        os.fsync(journal.fileno())

    print("ready", flush=True)
    made = 0
    while True:
        if alive and rng.random() < (DELETE_SHARE if len(alive) < FULL else FULL_DELETE_SHARE):
            doc_id, uri = alive.pop(rng.randrange(len(alive)))
            note(f"intent-delete {doc_id} {uri}")
            store.documents.delete(COLLECTION, doc_id)
            note(f"deleted {doc_id} {uri}")
            continue
        batch = []
        for _ in range(rng.randint(1, 3)):
            made += 1
            batch.append(document(f"s{seed}-{made}", rng.randint(1, 4)))
        note("intent-add " + " ".join(f"{d['source_uri']}:{len(d['chunks'])}" for d in batch))
        outcomes = store.documents.add(COLLECTION, batch, wait=rng.random() >= NO_WAIT_SHARE)
        for doc, outcome in zip(batch, outcomes, strict=True):
            if outcome.status != "added" or outcome.document_id is None:
                raise SystemExit(f"{doc['source_uri']}: ingest returned {outcome}")
            note(f"added {outcome.source_uri} {outcome.document_id} {outcome.chunks}")
            alive.append((outcome.document_id, outcome.source_uri))


if __name__ == "__main__":
    main()
