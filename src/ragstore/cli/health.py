"""`ragstore health`: every component's status now, or the snapshots the server took (system_health)."""

from __future__ import annotations

import typer

from ragstore.cli.common import JsonOpt, domain_errors, opened_store, out, print_json

__all__ = ["health"]


def health(
    history: bool = typer.Option(False, "--history", help="The snapshots the server took, not health now."),
    hours: int = typer.Option(24, "--hours", min=1, max=24 * 31, help="With --history: how far back, in hours."),
    as_json: bool = JsonOpt,
) -> None:
    """Health now as this command sees the store (exit 1 when a component is down), or with --history the
    snapshots the server took each minute (RAGSTORE_HEALTH_SNAPSHOT_SCHEDULE)."""
    from rich.table import Table

    with opened_store(recover=False) as store, domain_errors():
        if not history:
            report = store.ops.health()
        else:
            past = store.ops.history(hours)
    if not history:
        if as_json:
            print_json(report.to_json())
        else:
            out.print(f"status: {report.status}")
            for name, part in report.to_json()["components"].items():
                out.print(f"  {name}: {part.get('status', '-')}")
        if report.status == "down":
            raise typer.Exit(1)
        return
    if as_json:
        print_json(past)
        return
    table = Table(title=f"health snapshots, last {hours} h ({len(past.snapshots)})")
    for column in ("taken at (UTC)", "status", "db ms", "outbox", "dead", "jobs queued", "disk free", "RSS"):
        table.add_column(column, justify="left" if column in ("taken at (UTC)", "status") else "right")
    for snap in past.snapshots:
        table.add_row(
            snap.taken_at.strftime("%Y-%m-%d %H:%M"),
            snap.status,
            f"{snap.database_latency_ms:.1f}" if snap.database_latency_ms is not None else "-",
            str(snap.outbox_pending),
            str(snap.outbox_dead + snap.jobs_dead),
            str(snap.jobs_queued),
            _mb(snap.disk_free_bytes),
            _mb(snap.rss_bytes),
        )
    out.print(table)
    if not past.snapshots:
        out.print("no snapshot yet: a running `ragstore serve` takes one each minute")


def _mb(value: int | None) -> str:
    return f"{value / 2**20:,.0f} MB" if value is not None else "-"
