"""`ragstore check`: SQL against the vector index; run a check, list past runs, show one report.

`ragstore check [-c NAME] [--repair]` with no subcommand still runs a check, as cron lines and the
disaster-recovery procedure written before the subcommands expect; `check run` is the same command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from ragstore.cli.common import (
    EXIT_FAILED,
    JsonOpt,
    OptionalCollectionOpt,
    domain_errors,
    out,
    print_json,
    store_or_client,
)

if TYPE_CHECKING:  # the schemas load numpy, which `ragstore --help` must not wait for
    from ragstore.schemas import ConsistencyReport

__all__ = ["app"]

app = typer.Typer(
    help="Compare SQL with the vector index: seven kinds of drift; `check` alone runs a check, exit 1 while "
    "problems remain (for cron).",
    invoke_without_command=True,
)

RepairOpt: Any = typer.Option(False, "--repair", help="Repair the safe kinds through the outbox.")


@app.callback()
def check_default(
    ctx: typer.Context,
    collection: str | None = OptionalCollectionOpt,
    repair: bool = RepairOpt,
    history: bool = typer.Option(False, "--history", hidden=True, help="Old spelling of `check list`."),
    as_json: bool = JsonOpt,
) -> None:
    """Without a subcommand: run a check (the same as `check run`)."""
    if ctx.invoked_subcommand is not None:
        return
    if history:
        check_list(limit=20, as_json=as_json)
    else:
        check_run(collection=collection, repair=repair, as_json=as_json)


@app.command("run")
def check_run(
    collection: str | None = OptionalCollectionOpt, repair: bool = RepairOpt, as_json: bool = JsonOpt
) -> None:
    """Run a check (and the safe repairs with --repair) and store its report; exit 1 while problems remain."""
    with store_or_client() as store, domain_errors():
        report = store.consistency.check(collection, repair=repair, trigger="cli")
        assert report is not None
    if as_json:
        print_json(report)
    else:
        _print_report(report)
    if sum((report.remaining or {}).values()):
        raise typer.Exit(EXIT_FAILED)


@app.command("list")
def check_list(
    limit: int = typer.Option(20, min=1, max=1000, help="How many runs, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """Past runs, newest first: when, what started them, how many problems they found."""
    from rich.table import Table

    with store_or_client(recover=False) as store, domain_errors():
        runs = store.consistency.history(limit)
    if as_json:
        print_json(runs)
        return
    table = Table("id", "started", "trigger", "state", "problems", "ms")
    for r in runs:
        started = r.started_at.isoformat() if r.started_at else ""
        table.add_row(str(r.id), started, r.trigger, r.state, str(r.problems), str(r.duration_ms))
    out.print(table)


@app.command("show")
def check_show(
    report_id: int | None = typer.Argument(None, help="A run id from `check list`; default: the newest."),
    as_json: bool = JsonOpt,
) -> None:
    """One stored report, as `check run` printed it."""
    with store_or_client(recover=False) as store, domain_errors():
        report = store.consistency.report(report_id)
    if as_json:
        print_json(report)
    else:
        _print_report(report)


def _print_report(report: ConsistencyReport) -> None:
    from rich.table import Table

    if report.remaining is None:  # a run that failed or is still running has no findings to show
        error = f": {report.error}" if report.error else ""
        out.print(f"consistency check {report.id} {report.state}{error}", highlight=False)
        return
    remaining = report.remaining
    previous = report.previous
    table = Table("kind", "safe", "found", "remaining", "vs previous", title=f"consistency check {report.id}")
    for kind, info in (report.kinds or {}).items():
        change = report.changes[kind] if report.changes else None
        table.add_row(
            kind,
            "yes" if info.safe else "no",
            str(report.counts[kind]),
            str(remaining[kind]),
            "" if change is None else f"{change:+d}",
        )
    out.print(table)
    shown = report.remaining_findings if report.remaining_findings is not None else report.findings
    for f in shown or []:
        ids = ", ".join(str(i) for i in f.ids) + (" …" if f.count > len(f.ids) else "")
        where = f" in {f.collection}" if f.collection else ""
        out.print(f"- {f.kind}{where}: {f.count} {f.detail}" + (f" [{ids}]" if ids else ""))
        out.print(f"  remedy: {f.remedy}")
    if report.repairs:
        out.print(f"repairs: {report.repairs.model_dump()}")
    took = f"{report.duration_ms or 0:.0f} ms"
    since = f"; previous run {previous.id} found {previous.problems}" if previous else ""
    out.print(f"found {report.problems}, remaining {sum(remaining.values())} ({took}{since})")
