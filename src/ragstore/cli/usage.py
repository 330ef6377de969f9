"""`ragstore usage`: requests by day, key and route over the last days (the usage log, api_usage_logs)."""

from __future__ import annotations

import typer

from ragstore.cli.common import JsonOpt, domain_errors, opened_store, out, print_json

__all__ = ["usage"]


def usage(
    key: str | None = typer.Option(None, "--key", help="Only this API key: its id or its public key id."),
    days: int = typer.Option(7, "--days", min=1, max=3650, help="The window, in days up to now."),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="At most this many rows (busiest first)."),
    as_json: bool = JsonOpt,
) -> None:
    """Requests by day, key and route: counts, errors, 429s, latency, bytes, embedding calls and tokens."""
    from rich.table import Table

    with opened_store(recover=False) as store, domain_errors():
        data = store.usage.summary(key=key, days=days, limit=limit)
    if as_json:
        print_json(data)
        return
    t = data.totals
    out.print(
        f"{t.requests} requests in {days} days: {t.errors} errors ({t.rate_limited} rate limited), "
        f"{t.request_bytes} bytes in, {t.response_bytes} out, {t.embedding_calls} embedding calls "
        f"({t.embedding_tokens} tokens)"
    )
    table = Table()
    for name, justify in (
        ("day", "left"),
        ("key", "left"),
        ("route", "left"),
        ("requests", "right"),
        ("errors", "right"),
        ("429", "right"),
        ("avg ms", "right"),
        ("embed calls", "right"),
        ("tokens", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in data.rows:
        who = row.key or (f"#{row.api_key_id}" if row.api_key_id else f"user {row.user_id}" if row.user_id else "-")
        table.add_row(
            row.day.isoformat(),
            who,
            f"{row.method} {row.route}",
            str(row.requests),
            str(row.errors),
            str(row.rate_limited),
            f"{row.latency_ms_avg:.1f}",
            str(row.embedding_calls),
            str(row.embedding_tokens),
        )
    out.print(table)
    if data.truncated:
        out.print(f"(only the busiest {limit} rows; raise --limit or narrow with --key/--days)")
