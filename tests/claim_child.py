"""A worker that claims outbox operations and is then killed (by the test) before it applies them.

argv: data_dir. DATABASE_URL comes from the environment. Prints "claimed N" and sleeps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ragstore.config import Settings
from ragstore.db.engine import Database
from ragstore.sync.applier import OutboxApplier
from ragstore.vectors.memory import MemoryVectorIndex

settings = Settings(data_dir=Path(sys.argv[1]))
applier = OutboxApplier(Database(settings), MemoryVectorIndex(), lease_s=3600)
claimed = applier.claim(ignore_schedule=True)
print(f"claimed {len(claimed)}", flush=True)
time.sleep(600)
