"""`ragstore records <type> list|get|create|update|delete`: one command group per declared record type.

Made by one factory (`group_for`) from declarations/record_types.py, so a new record type gets its commands by being
declared. Bodies are JSON, given with --data '{...}' or --file PATH (`-` reads stdin); bad JSON, an unknown
field or a bad value exits 2 with one line naming the field. An update's JSON carries the `version` read
(a stale one exits 2 with the 409's message). A few commands belong to one type: `ai-request-stats
summary`, `cache-metadata sample`, `flows version`, `workflows executions`.

Importing this module stays cheap: the declarations are plain dataclasses; the store, the schemas and
SQLAlchemy load inside the commands.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from ragstore.cli.common import (
    EXIT_BAD_INPUT,
    JsonOpt,
    YesOpt,
    confirm_destructive,
    domain_errors,
    fail,
    opened_store,
    out,
    plain,
    print_json,
)
from ragstore.declarations.record_spec import RecordType
from ragstore.declarations.record_types import EXECUTION_STATES, RECORD_TYPES

__all__ = ["app", "group_for"]

MAX_BODY_BYTES = 1024 * 1024  # a record's JSON body: the largest JSON field is 256 KiB
DataOpt: Any = typer.Option(None, "--data", "-d", help='The record as a JSON object, e.g. \'{"name": "x"}\'.')
FileOpt: Any = typer.Option(None, "--file", "-f", help="Read the JSON object from this file ('-': stdin).")
IdArg: Any = typer.Argument(..., min=1, max=2**63 - 1, help="The record's id.")

app = typer.Typer(
    help="Application records: workflows, executions, guardrails, MCP connections, flows, analyses, AI request "
    "statistics, cache samples (docs/records.md).",
    no_args_is_help=True,
)


def _body(data: str | None, file: Path | None) -> dict[str, Any]:
    """The JSON object of --data or --file (exactly one), bounded; exit 2 with one line otherwise."""
    if (data is None) == (file is None):
        fail("give the record as JSON with --data '{...}' or --file PATH (one of them)", EXIT_BAD_INPUT)
    try:
        if data is not None:
            raw = data.encode("utf-8", "surrogatepass")
        elif str(file) == "-":
            raw = sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
        else:
            assert file is not None
            with file.open("rb") as handle:
                raw = handle.read(MAX_BODY_BYTES + 1)
    except OSError as exc:
        fail(f"--file: cannot read {file}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    if len(raw) > MAX_BODY_BYTES:
        fail(f"the JSON body is over {MAX_BODY_BYTES} bytes", EXIT_BAD_INPUT)
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"the body is not JSON: {exc}", EXIT_BAD_INPUT)
    if not isinstance(value, dict):
        fail("the body must be a JSON object ({...})", EXIT_BAD_INPUT)
    return value


def _show(record: Any, as_json: bool) -> None:
    if as_json:
        print_json(record)
        return
    for name, value in record.model_dump(mode="json").items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
        out.print(f"{name}: {plain(shown[:200])}", highlight=False)


def _table(page: Any, spec: RecordType, as_json: bool) -> None:
    if as_json:
        print_json(page)
        return
    from rich.table import Table

    columns = ["id"] + ([spec.parent.field] if spec.parent else [])
    columns += [*[f.name for f in spec.stored if f.kind not in ("json", "text")][:5], "version"]
    table = Table(*columns)
    for item in page.items:
        row = item.model_dump(mode="json")
        table.add_row(*(plain(str(row.get(c, ""))) for c in columns))
    out.print(table)
    if page.next_cursor or page.next_offset is not None:
        more = f"--cursor {page.next_cursor}" if page.next_cursor else f"--offset {page.next_offset}"
        out.print(f"(more: {more})")


def group_for(spec: RecordType) -> typer.Typer:
    """The commands of one record type (list and get only for a type the store writes itself)."""
    table = spec.table
    group = typer.Typer(help=f"{spec.description} (table {table})", no_args_is_help=True)

    @group.command("list")
    def list_records(
        filter_: str | None = typer.Option(
            None,
            "--filter",
            help='JSON: {"field": value, "field__gte": low, "field__lt": high}. Fields: '
            + ", ".join(sorted(spec.filterable)),
        ),
        sort: str | None = typer.Option(None, "--sort", help="Order by a field (-field: descending)."),
        limit: int = typer.Option(50, "--limit", min=1, max=500, help="At most this many records."),
        offset: int | None = typer.Option(None, "--offset", min=0, max=10_000, help="Skip this many."),
        cursor: str | None = typer.Option(None, "--cursor", help="The cursor the previous page printed."),
        as_json: bool = JsonOpt,
    ) -> None:
        """List records: filters, sort, a cursor or an offset."""
        with opened_store(recover=False) as store, domain_errors():
            page = store.records.list(table, filters=filter_, sort=sort, limit=limit, offset=offset, cursor=cursor)
        _table(page, spec, as_json)

    @group.command("get")
    def get_record(record_id: int = IdArg, as_json: bool = JsonOpt) -> None:
        """Show one record."""
        with opened_store(recover=False) as store, domain_errors():
            record = store.records.get(table, record_id)
        _show(record, as_json)

    if not spec.writable:
        return group

    @group.command("create")
    def create_record(data: str | None = DataOpt, file: Path | None = FileOpt, as_json: bool = JsonOpt) -> None:
        """Create a record from a JSON object."""
        body = _body(data, file)
        with opened_store(recover=False) as store, domain_errors():
            record = store.records.create(table, body)
        _show(record, as_json)

    @group.command("update")
    def update_record(
        record_id: int = IdArg, data: str | None = DataOpt, file: Path | None = FileOpt, as_json: bool = JsonOpt
    ) -> None:
        """Change a record: the JSON names the fields to change and the `version` that was read."""
        body = _body(data, file)
        with opened_store(recover=False) as store, domain_errors():
            record = store.records.update(table, record_id, body)
        _show(record, as_json)

    @group.command("delete")
    def delete_record(record_id: int = IdArg, yes: bool = YesOpt, as_json: bool = JsonOpt) -> None:
        """Delete a record and what belongs to it (audited)."""
        confirm_destructive(f"delete {spec.label} {record_id} and everything that belongs to it?", yes)
        with opened_store(recover=False) as store, domain_errors():
            store.records.delete(table, record_id)
        if as_json:
            print_json({"deleted": True, "type": table, "id": record_id})
        else:
            out.print(f"deleted {spec.label} {record_id}")

    return group


GROUPS = {spec.table: group_for(spec) for spec in RECORD_TYPES}


@GROUPS["ai_request_stats"].command("summary")
def ai_summary(
    days: int = typer.Option(7, "--days", min=1, max=366, help="The window, in days up to now."),
    as_json: bool = JsonOpt,
) -> None:
    """AI requests per model and day: counts, errors, tokens, cost and latency (embedding_usage included)."""
    from rich.table import Table

    with opened_store(recover=False) as store, domain_errors():
        summary = store.records.ai_summary(days)
    if as_json:
        print_json(summary)
        return
    columns = ("day", "model", "kind", "requests", "errors", "prompt", "completion", "cost $", "avg ms")
    grid = Table(*columns)
    for row in summary.rows:
        grid.add_row(
            row.day.isoformat(),
            plain(row.model),
            row.kind,
            str(row.requests),
            str(row.errors),
            str(row.prompt_tokens),
            str(row.completion_tokens),
            f"{row.cost_usd:.4f}",
            f"{row.latency_ms_avg:.1f}",
        )
    out.print(grid)


@GROUPS["cache_metadata"].command("sample")
def sample_caches(as_json: bool = JsonOpt) -> None:
    """Record every cache layer's hits and misses now (this process's counters; the server samples its own)."""
    with opened_store(recover=False) as store, domain_errors():
        samples = store.records.sample_caches()
    if as_json:
        print_json(samples)
        return
    for sample in samples:
        counts = sample.model_dump()
        out.print(f"{counts['layer']}: {counts['hits']} hits, {counts['misses']} misses")


@GROUPS["flows"].command("version")
def flow_version(
    flow_id: int = IdArg,
    number: int = typer.Argument(..., min=1, max=2**31 - 1, help="The flow's version number."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a flow as it was at one version."""
    with opened_store(recover=False) as store, domain_errors():
        record = store.records.flow_version(flow_id, number)
    _show(record, as_json)


@GROUPS["workflows"].command("executions")
def workflow_executions(
    workflow_id: int = IdArg,
    status: str | None = typer.Option(None, "--status", help="One of: " + ", ".join(EXECUTION_STATES)),
    since: datetime | None = typer.Option(None, "--since", help="Started at or after (ISO 8601)."),
    until: datetime | None = typer.Option(None, "--until", help="Started before (ISO 8601)."),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="At most this many."),
    cursor: str | None = typer.Option(None, "--cursor", help="The cursor the previous page printed."),
    as_json: bool = JsonOpt,
) -> None:
    """A workflow's execution history, newest first, by status and start time."""
    spec = next(s for s in RECORD_TYPES if s.table == "workflow_executions")
    with opened_store(recover=False) as store, domain_errors():
        page = store.records.executions(
            workflow_id, status=status, since=since, until=until, limit=limit, cursor=cursor
        )
    _table(page, spec, as_json)


for _table_name, _group in GROUPS.items():
    app.add_typer(_group, name=_table_name.replace("_", "-"))
