"""glibc's malloc tuned for a long-running threaded server: few arenas for its dozens of request threads.

glibc gives threads arenas of their own, up to 8 per core, and a freed block is reused only by the threads of
its arena: under a mixed load each arena keeps free holes of its own resident, and the RSS keeps growing while
the bytes in use do not. A 10-minute soak on SQLite (50 clients, 1 process) showed it after minute 5, once the
in-process caches were full: in use flat (160 -> 166 MiB), the arenas' free space growing (97 -> 120 MiB), the
RSS with it (about 7 MiB a minute). With `RAGSTORE_MALLOC_ARENA_MAX=2` the free space stayed at 10-25 MiB and
the RSS level (docs/operations.md, "Memory"). Set early, before the request threads allocate: arenas already
made stay. `RAGSTORE_MALLOC_MMAP_THRESHOLD_KB` fixes glibc's mmap threshold (which otherwise rises as large
blocks are freed); it did not change the growth and is off by default. 0 leaves glibc's default, and so does
glibc's own variable in the environment (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`), which wins; other C
libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

__all__ = ["tune_malloc"]

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # malloc.h
M_ARENA_MAX = -8


def tune_malloc(mmap_threshold_kb: int, arena_max: int) -> list[str]:
    """Apply the settings that are not 0 (and not given to glibc in the environment); which were set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return []
    wanted = []
    if arena_max > 0 and "MALLOC_ARENA_MAX" not in os.environ:
        wanted.append(("arena_max", M_ARENA_MAX, arena_max))
    if mmap_threshold_kb > 0 and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        wanted.append(("mmap_threshold", M_MMAP_THRESHOLD, mmap_threshold_kb * 1024))
    if not wanted:
        return []
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError) as exc:
        log.debug("mallopt is not available: %s", exc)
        return []
    done = []
    for name, option, value in wanted:
        if mallopt(option, ctypes.c_int(value)):
            done.append(name)
        else:
            log.warning("mallopt refused %s=%d; glibc's default applies", name, value)
    return done
