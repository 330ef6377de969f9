"""glibc's malloc tuned for a long-running threaded server: few arenas for its dozens of request threads.

glibc gives threads arenas of their own, up to 8 per core, and a freed block is reused only by the threads of
its arena: under a mixed load each arena keeps free holes of its own resident, and the RSS keeps growing while
the bytes in use do not. A 10-minute soak on SQLite (50 clients, 1 process) showed it after minute 5, once the
in-process caches were full: in use flat (160 -> 166 MiB), the arenas' free space growing (97 -> 120 MiB), the
RSS with it (about 7 MiB a minute). With `RAGSTORE_MALLOC_ARENA_MAX=2` the free space stayed at 10-35 MiB
(docs/operations.md, "Memory"). Set early, before the request threads allocate: arenas already made stay.
A fixed mmap threshold was measured too and left the growth as it was. 0 leaves glibc's default, and so does
glibc's own `MALLOC_ARENA_MAX` in the environment, which wins; other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

__all__ = ["tune_malloc"]

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # malloc.h


def tune_malloc(arena_max: int) -> bool:
    """Limit glibc to `arena_max` arenas (not 0, and not given to glibc in the environment); whether it did."""
    if arena_max <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError) as exc:
        log.debug("mallopt is not available: %s", exc)
        return False
    if not mallopt(M_ARENA_MAX, ctypes.c_int(arena_max)):
        log.warning("mallopt refused arena_max=%d; glibc's default applies", arena_max)
        return False
    return True
