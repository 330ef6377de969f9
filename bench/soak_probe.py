"""What the soak reads about a running server besides its answers: its processes, its metrics, its database.

Read from /proc (psutil is no dependency of ragstore or of the bench extra) and from GET /metrics, so that
the figures are those an operator would see: the kernel's resident set and descriptor table of each server
process, and the gauges Prometheus would scrape.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessStats", "count_pg_connections", "log_messages", "metric_sum", "process_stats", "process_tree"]

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


@dataclass(frozen=True)
class ProcessStats:
    """One reading of the server's processes (the `ragstore serve` parent and its uvicorn workers)."""

    processes: int
    rss_bytes: int  # the sum of each process's resident set (pages shared after fork counted in each)
    open_files: int  # descriptors of every process: files, sockets, pipes
    db_file_fds: int  # descriptors on the SQLite database file itself, one per connection (0 on PostgreSQL)
    cpu_s: float  # user + system CPU seconds of the live processes since they started


def process_tree(root: int) -> list[int]:
    """`root` and every descendant: uvicorn's `--workers N` forks from the parent, and multiprocessing adds a
    resource tracker; all of them hold memory the server costs."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the fields after its `)` are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def process_stats(root: int, db_file: Path | None) -> ProcessStats:
    rss = files = on_db = alive = 0
    ticks = 0
    target = str(db_file) if db_file else None
    for pid in process_tree(root):
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            fds = os.listdir(f"/proc/{pid}/fd")
            after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(after_name[11]) + int(after_name[12])  # utime, stime (fields 14 and 15)
        except OSError:
            continue  # exited between the listing and the reading
        alive += 1
        rss += resident
        files += len(fds)
        if target is None:
            continue
        for fd in fds:
            try:
                # Each SQLite connection opens the database file once (and its -wal and -shm beside it).
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    on_db += 1
            except OSError:
                continue
    return ProcessStats(alive, rss, files, on_db, ticks / TICKS)


def metric_sum(exposition: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` (in the Prometheus text format) whose labels include `labels`."""
    total = 0.0
    for line in exposition.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        given = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(given.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def log_messages(log: Path) -> Counter[str]:
    """The server's stderr as distinct messages with their counts. ragstore's own loggers have no handler
    under `ragstore serve`, so Python's last-resort handler prints them bare (no level, no logger name):
    every line that does not continue a traceback is a message at WARNING or above."""
    if not log.exists():
        return Counter()
    skip = ("Traceback", "The above exception", "During handling", "DETAIL:", "[SQL:", "[parameters:", "(Background")
    lines = log.read_text(errors="replace").splitlines()
    return Counter(line[:200] for line in lines if line and not line[0].isspace() and not line.startswith(skip))


def count_pg_connections(server_url: str, database: str) -> int:
    """Sessions open on `database` (the soak's own scratch database: every one is the server's), counted from
    a connection to the server's maintenance database so that the count never includes itself."""
    import psycopg
    from sqlalchemy import make_url

    plain = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0
