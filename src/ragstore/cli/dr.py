"""`ragstore dr`: could the store be restored now, and how long would it take."""

from __future__ import annotations

import typer

from ragstore.cli.common import EXIT_FAILED, JsonOpt, domain_errors, human_size, opened_store, out, print_json

__all__ = ["app"]

app = typer.Typer(
    help="Disaster recovery: is a restore possible now, and how long would it take.", no_args_is_help=True
)


@app.command("report")
def dr_report(as_json: bool = JsonOpt) -> None:
    """Disaster-recovery readiness: newest verified backup, chain, key, free space, estimated restore time."""
    with opened_store(recover=False) as store, domain_errors():
        report = store.backups.dr_report()
    if as_json:
        print_json(report)
    else:
        out.print(f"disaster recovery: [bold]{report.status}[/] (repository {report.repository})")
        newest, verified = report.newest, report.newest_verified
        if newest:
            chain = "complete" if newest.chain_complete else f"BROKEN ({newest.missing_blocks} blocks missing)"
            out.print(f"  newest backup: {newest.id}, {newest.age_hours:.1f} h old, chain {chain}")
        if verified:
            out.print(
                f"  newest verified: {verified.id}, {verified.backup_age_hours:.1f} h old, "
                f"verified {verified.verified_hours_ago:.1f} h ago"
            )
        out.print(f"  key present: {'yes' if report.key_present else 'no'}; encrypted: {report.encrypted}")
        free = report.free_bytes
        if free is not None:  # always here: only the HTTP report leaves it out
            out.print(f"  free: data {human_size(free.data_dir)}, repository {human_size(free.repository)}")
        estimate = report.estimated_restore_s
        out.print(f"  estimated restore: {estimate.seconds:.1f} s ({estimate.basis})")
        for p in report.problems:
            out.print(f"  [red]problem:[/] {p}")
        for w in report.warnings:
            out.print(f"  [yellow]warning:[/] {w}")
    if report.status == "failing":
        raise typer.Exit(EXIT_FAILED)
