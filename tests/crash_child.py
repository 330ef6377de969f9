"""Child process for the crash tests: does some writes, then dies by SIGKILL at a chosen instant.

Usage: python crash_child.py DATA_DIR SCENARIO
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.sync.applier import OutboxApplier

FIRST = "김치는 배추를 소금에 절여 양념에 버무린 뒤 발효시킨 한국의 대표 음식이다."
SECOND = "Photosynthesis turns sunlight, water and carbon dioxide into glucose and oxygen in plant leaves."


def die(*_: Any, **__: Any) -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    data_dir, scenario = Path(sys.argv[1]), sys.argv[2]
    # A long persist interval: the index file is only written when we say so.
    store = RagStore.open(Settings(data_dir=data_dir, index_persist_interval_s=3600))
    if scenario != "delete_after_first_txn":
        store.collections.create("kb")
        first = store.documents.add_text("kb", FIRST, title="first", source_uri="first.txt")
        store.index.persist()
        print(f"first {first.document_id}", flush=True)
    if scenario == "after_first_txn":
        store.components.applier.apply_pending = die  # type: ignore[method-assign]
    elif scenario == "after_index_before_second_txn":
        OutboxApplier._finish = staticmethod(die)  # type: ignore[method-assign,assignment]
    elif scenario == "after_second_txn_before_persist":
        pass  # the write completes; the index file on disk stays behind
    elif scenario == "delete_after_first_txn":
        store.components.applier.apply_pending = die  # type: ignore[method-assign]
        doc = store.documents.list("kb")[0]
        print(f"deleting {doc.id}", flush=True)
        store.documents.delete("kb", doc.id)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    if scenario != "delete_after_first_txn":
        second = store.documents.add_text("kb", SECOND, title="second", source_uri="second.txt")
        print(f"second {second.document_id}", flush=True)
    die()


if __name__ == "__main__":
    main()
