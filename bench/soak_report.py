"""The soak's samples, its verdict on each target and its plot.

The targets are the issue's: no error; RSS after the first two minutes grows by at most 10 % (the first two
minutes fill the caches, the pools and the allocator's arenas, which is start-up, not a leak); open files
and database connections flat; `ragstore check` clean at the end. "Flat" is judged on peaks, not on single
readings: a pool that lends and returns connections, and a server that opens and closes sockets, move up
and down between two samples, while a leak raises the peak. So the highest reading of the run's second
half is compared with the highest of its first half (10 % and 2 more allowed).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from soak_probe import log_messages
from soak_traffic import OPS, Traffic

__all__ = ["Sample", "console", "plot", "summarise"]

# Wide enough for the samples table in a log file, where rich would otherwise fold it to 80 columns.
console = Console(width=190)

WARM_UP_S = 120.0
RSS_GROWTH_LIMIT = 0.10


@dataclass
class Sample:
    t: float  # seconds since the traffic started, at the end of the window
    seconds: float  # the window's length
    ops: dict[str, dict[str, float]] = field(default_factory=dict)
    processes: int = 0
    rss_mib: float = 0.0
    open_files: int = 0
    db_connections: int = 0  # PostgreSQL sessions on the scratch database, or SQLite database descriptors
    db_checked_out: float = 0.0  # ragstore_db_connections: out of the pools at the instant of the scrape
    outbox_pending: float = 0.0
    # server CPU (all its processes) per request answered in the window: a server that slows down as it works
    # costs more per request; a machine that other work slows down costs the same per request, only later
    cpu_ms_per_request: float = 0.0
    # ragstore_cache_requests_total by layer ("search", "emb"): [hits, misses] since the server started
    cache: dict[str, list[float]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return int(sum(f["requests"] for f in self.ops.values()))

    @property
    def errors(self) -> int:
        return int(sum(f["errors"] for f in self.ops.values()))

    def line(self) -> str:
        p95 = " ".join(f"{op} {self.ops[op]['p95']:.0f}" for op in OPS)
        return (
            f"{self.t:6.0f} s  {self.requests / self.seconds:7.1f} req/s  errors {self.errors}  p95 ms: {p95}  "
            f"RSS {self.rss_mib:.0f} MiB ({self.processes} proc)  files {self.open_files}  "
            f"db {self.db_connections} (out {self.db_checked_out:.0f})  outbox {self.outbox_pending:.0f}  "
            f"CPU {self.cpu_ms_per_request:.1f} ms/req"
        )


def _flat(values: list[tuple[float, float]], half: float) -> tuple[bool, float, float]:
    first = max((v for t, v in values if t <= half), default=0.0)
    second = max((v for t, v in values if t > half), default=first)
    return second <= first * 1.1 + 2, first, second


def summarise(title: str, traffic: Traffic, samples: list[Sample], check_code: int, check_said: str, log: Path) -> Any:
    """Print the samples, the totals per operation and PASS/FAIL per target; return them for --json."""
    grid = Table(title=f"{title}: samples")
    columns = (
        "t s",
        "req/s",
        "err",
        *(f"{op} p95" for op in OPS),
        "RSS MiB",
        "files",
        "db conn",
        "outbox",
        "CPU ms/req",
    )
    for col in columns:
        grid.add_column(col, justify="right")
    for s in samples:
        grid.add_row(
            f"{s.t:.0f}",
            f"{s.requests / s.seconds:.1f}",
            str(s.errors),
            *(_ms(s.ops[op]["p95"]) for op in OPS),
            f"{s.rss_mib:.0f}",
            str(s.open_files),
            str(s.db_connections),
            f"{s.outbox_pending:.0f}",
            f"{s.cpu_ms_per_request:.1f}",
        )
    console.print(grid)

    wall = samples[-1].t if samples else 0.0
    totals = Table(title=f"{title}: whole run, {wall:.0f} s")
    for col in ("operation", "ok", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        totals.add_column(col, justify="left" if col == "operation" else "right")
    import numpy as np

    per_op: dict[str, Any] = {}
    for op in OPS:
        values = traffic.totals[op]
        p50, p95, p99 = np.percentile(values, [50, 95, 99]) if values else (math.nan,) * 3
        ok, errors = len(values), traffic.total_errors[op]
        per_op[op] = {"ok": ok, "errors": errors, "p50": float(p50), "p95": float(p95), "p99": float(p99)}
        rate = (ok + errors) / wall if wall else 0.0
        totals.add_row(op, f"{ok:,}", str(errors), f"{rate:.1f}", _ms(p50), _ms(p95), _ms(p99))
    requests = sum(len(v) for v in traffic.totals.values()) + sum(traffic.total_errors.values())
    errors = sum(traffic.total_errors.values())
    totals.add_row("all", f"{requests - errors:,}", str(errors), f"{requests / wall:.1f}" if wall else "", "", "", "")
    console.print(totals)
    console.print(
        f"made {traffic.conversations} conversations, {traffic.messages} messages; ingested "
        f"{traffic.deleted + len(traffic.created)} documents still counted, deleted {traffic.deleted}"
    )
    for kind, count in sorted(traffic.error_kinds.items(), key=lambda kv: -kv[1]):
        console.print(f"[red]error {kind}: {count}[/]")
    for said in traffic.error_samples:
        console.print(f"  {said}", highlight=False, markup=False)

    verdict = targets(samples, errors, check_code, check_said)
    said = log_messages(log)
    console.print(f"server log: {sum(said.values())} messages, {len(said)} distinct")
    for line, count in said.most_common(10):
        console.print(f"  {count:5d} x {line}", highlight=False, markup=False)
    summary = {"requests": requests, "errors": errors, "per_op": per_op, "error_kinds": traffic.error_kinds}
    return summary | {"server_log": dict(said)} | verdict


def targets(samples: list[Sample], errors: int, check_code: int, check_said: str) -> dict[str, Any]:
    grid = Table(title="targets")
    for col in ("target", "measured", "verdict"):
        grid.add_column(col)
    verdict: dict[str, Any] = {}

    def row(name: str, measured: str, ok: bool) -> None:
        verdict[name] = {"measured": measured, "pass": ok}
        grid.add_row(name, measured, "[green]PASS[/]" if ok else "[red]FAIL[/]")

    row("0 errors", f"{errors} errors", errors == 0)
    if samples:
        base = next((s for s in samples if s.t >= WARM_UP_S), samples[-1])
        last = samples[-1]
        growth = (last.rss_mib - base.rss_mib) / base.rss_mib
        measured = (
            f"{base.rss_mib:.0f} MiB at {base.t:.0f} s -> {last.rss_mib:.0f} MiB at {last.t:.0f} s "
            f"({growth * 100:+.1f} %; first sample {samples[0].rss_mib:.0f} MiB)"
        )
        row("RSS growth after 2 min <= 10 %", measured, growth <= RSS_GROWTH_LIMIT)
        half = last.t / 2
        for name, attr in (("open files flat", "open_files"), ("db connections flat", "db_connections")):
            ok, first, second = _flat([(s.t, float(getattr(s, attr))) for s in samples], half)
            firsts = f"first {getattr(samples[0], attr)}, last {getattr(last, attr)}"
            row(name, f"{firsts}; peak {first:.0f} in the first half, {second:.0f} in the second", ok)
        pending = [s.outbox_pending for s in samples]
        console.print(f"outbox backlog: max {max(pending):.0f}, last {pending[-1]:.0f}")
    row("`ragstore check` clean", f"exit {check_code}: {check_said}", check_code == 0)
    console.print(grid)
    return verdict


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:,.1f}"


def plot(title: str, samples: list[Sample], path: Path) -> None:
    """p95 and rate per operation, RSS, descriptors and connections, and the outbox over the run's time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(2, 4, figsize=(19, 7.5), sharex=True)
    fig.suptitle(title)
    (p95, rate, rss, cpu), (files, outbox, cache, errs) = axes
    for op in OPS:
        p95.plot(minutes, [s.ops[op]["p95"] for s in samples], marker=".", label=op)
        rate.plot(minutes, [s.ops[op]["per_s"] for s in samples], marker=".", label=op)
    errs.bar(minutes, [s.errors for s in samples], width=0.3, color="red")
    errs.set(title="errors per window", ylabel="requests", ylim=(0, max(1, *(s.errors for s in samples)) * 1.2))
    cpu.plot(minutes, [s.cpu_ms_per_request for s in samples], marker=".", color="brown")
    cpu.set(title="server CPU per request (window)", ylabel="ms")
    cpu.set_ylim(bottom=0)
    p95.set(title="p95 latency per operation", ylabel="ms", yscale="log")
    rate.set(title="requests/s per operation (window)", ylabel="req/s")
    p95.legend(fontsize="small")
    rate.legend(fontsize="small")
    rss.plot(minutes, [s.rss_mib for s in samples], marker=".", color="black")
    if samples and samples[-1].t > WARM_UP_S:
        rss.axvline(WARM_UP_S / 60, color="grey", linestyle=":")
    rss.set(title=f"RSS, {samples[0].processes if samples else 0} server process(es) summed", ylabel="MiB")
    rss.set_ylim(bottom=0)
    files.plot(minutes, [s.open_files for s in samples], marker=".", label="open descriptors")
    files.plot(minutes, [s.db_connections for s in samples], marker=".", label="db connections")
    files.plot(minutes, [s.db_checked_out for s in samples], marker=".", label="checked out (metric)")
    files.set(title="open files and database connections", ylabel="count")
    files.set_ylim(bottom=0)
    files.legend(fontsize="small")
    outbox.plot(minutes, [s.outbox_pending for s in samples], marker=".", color="purple")
    outbox.set(title="outbox backlog (pending operations)", ylabel="operations", xlabel="minutes")
    for layer, label in (("search", "search results"), ("emb", "query embeddings")):
        ratio = []
        for a, b in itertools.pairwise(samples):
            hits, misses = (b.cache[layer][i] - a.cache[layer][i] for i in (0, 1))
            ratio.append(hits / (hits + misses) if hits + misses else math.nan)
        cache.plot(minutes[1:], ratio, marker=".", label=label)
    cache.set(title="cache hit ratio per window", ylim=(0, 1.05), xlabel="minutes")
    cache.legend(fontsize="small")
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    console.print(f"plot: {path}")
