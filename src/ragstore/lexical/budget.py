"""How much memory the in-memory BM25 indexes may take when RAGSTORE_LEXICAL_MEMORY_MB is not set.

A fixed 512 MB was too small for a million 60-word chunks (about 0.7 GB of postings), which then fell back to
FTS5 at 20x the latency, and too large for a 2 GB container. Building an index peaks at about four times its
postings (measured at 1M chunks: 4.2 GB resident for 0.72 GB of postings over a 1.1 GB store), so the default
is a sixteenth of the memory the process may use: the machine's, or its cgroup's limit when lower. A
collection at the cap then peaks near a quarter of that memory while it builds.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["AUTO_CEILING_MB", "AUTO_FLOOR_MB", "auto_budget_mb", "usable_memory_bytes"]

AUTO_SHARE = 16  # one sixteenth of the usable memory
AUTO_FLOOR_MB = 256  # below this an index of any use does not fit; FTS5 / the tsvector serve instead
AUTO_CEILING_MB = 4096  # past this, a build's peak (4x) is more than one process should take by default
CGROUP_FILES = ("memory.max", "memory/memory.limit_in_bytes")  # cgroup v2, then v1


def usable_memory_bytes(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The machine's memory, or its cgroup's limit when lower (a container's memory is the limit)."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for name in CGROUP_FILES:
        try:
            value = (cgroup_root / name).read_text().strip()
        except OSError:
            continue
        if value.isdigit() and 0 < int(value) < total:  # "max" or a huge number: no limit
            total = int(value)
    return int(total)


def auto_budget_mb(usable_bytes: int) -> int:
    """The default budget in MB for a process that may use `usable_bytes`."""
    share = usable_bytes // AUTO_SHARE // (1024 * 1024)
    return max(AUTO_FLOOR_MB, min(AUTO_CEILING_MB, share))
