"""`ragstore keys`: API keys for the HTTP API. The CLI runs beside the data files, so it needs no key itself.

A new key's text is printed once (`create`, `rotate`); afterwards only its public id is ever shown.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import typer

from ragstore.cli.common import EXIT_BAD_INPUT, JsonOpt, domain_errors, fail, opened_store, out, plain, print_json

if TYPE_CHECKING:
    from ragstore.schemas.security import ApiKeyInfo, CreatedKey

__all__ = ["app", "parse_duration"]

app = typer.Typer(help="API keys for the HTTP API: create, list, revoke, rotate, grant, deny.", no_args_is_help=True)

UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
DURATION = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
ROLES = "read, write, admin or metrics"
RoleOpt: Any = typer.Option(..., "--role", "-r", help=f"The role: {ROLES}.")
KeyArg: Any = typer.Argument(..., min=1, help="The key's number (the `id` column of `keys list`).")


def parse_duration(text: str) -> timedelta:
    """`90m`, `12h`, `30d` or `2w` as a timedelta; ValueError with a readable message otherwise."""
    match = DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"--expires-in {text!r} is not a duration like 90m, 12h, 30d or 2w")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds > 3650 * 86_400:
        raise ValueError(f"--expires-in {text!r} is more than ten years")
    return timedelta(seconds=seconds)


def _grants(key: ApiKeyInfo) -> str:
    return ", ".join(f"{g.role} on {g.collection}" for g in key.grants) or "nothing"


def _print_created(created: CreatedKey, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(created)
        return
    out.print(f"{verb} key {created.id} ({plain(created.name)}): {plain(_grants(created))}", highlight=False)
    if created.expires_at is not None:
        out.print(f"expires {created.expires_at.isoformat()}", highlight=False)
    out.print("the key (shown this once; store it now):", highlight=False)
    out.print(created.key, highlight=False, soft_wrap=True)


def _print_info(key: ApiKeyInfo, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(key)
    else:
        out.print(f"{verb} key {key.id} ({plain(key.name)}): {plain(_grants(key))}", highlight=False)


@app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", "-n", help="What the key is for (shown in listings)."),
    role: str = RoleOpt,
    collection: list[str] = typer.Option(
        [], "--collection", "-c", help="A collection the key may use (repeat it); default: every collection."
    ),
    expires_in: str | None = typer.Option(None, "--expires-in", help="Lifetime, e.g. 90m, 12h, 30d, 2w."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a key and print it once (with --json: {"id", "key", ...})."""
    try:
        lifetime = parse_duration(expires_in) if expires_in is not None else None
    except ValueError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    with opened_store(recover=False) as store, domain_errors():
        created = store.keys.create(name, role, collection or ["*"], expires_in=lifetime)
    _print_created(created, as_json, "created")


@app.command("list")
def keys_list(as_json: bool = JsonOpt) -> None:
    """Every key: id, name, grants, dates and whether it is active (never a secret)."""
    from rich.table import Table

    with opened_store(recover=False) as store, domain_errors():
        keys = store.keys.list()
    if as_json:
        print_json(keys)
        return
    table = Table("id", "key id", "name", "grants", "active", "created", "expires", "last used")
    for key in keys:
        table.add_row(
            str(key.id),
            key.key_id,
            plain(key.name),
            plain(_grants(key)),
            "yes" if key.active else ("revoked" if key.revoked_at else "expired"),
            key.created_at.isoformat(timespec="seconds"),
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "",
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "",
        )
    out.print(table)


@app.command("revoke")
def keys_revoke(key: int = KeyArg, as_json: bool = JsonOpt) -> None:
    """Revoke a key now (it stops working at once in this machine's processes, within seconds elsewhere)."""
    with opened_store(recover=False) as store, domain_errors():
        info = store.keys.revoke(key)
    _print_info(info, as_json, "revoked")


@app.command("rotate")
def keys_rotate(key: int = KeyArg, as_json: bool = JsonOpt) -> None:
    """Issue a new key with the same grants; the old one expires after RAGSTORE_KEY_ROTATION_GRACE_S."""
    with opened_store(recover=False) as store, domain_errors():
        created = store.keys.rotate(key)
    _print_created(created, as_json, "rotated into")


@app.command("grant")
def keys_grant(
    key: int = KeyArg,
    collection: str = typer.Option(..., "--collection", "-c", help='The collection, or "*" for every one.'),
    role: str = RoleOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Give a key a role on a collection (replacing what it held there)."""
    with opened_store(recover=False) as store, domain_errors():
        info = store.keys.grant(key, collection, role)
    _print_info(info, as_json, "granted")


@app.command("deny")
def keys_deny(
    key: int = KeyArg,
    collection: str = typer.Option(..., "--collection", "-c", help='The collection, or "*".'),
    as_json: bool = JsonOpt,
) -> None:
    """Take away what a key holds on a collection."""
    with opened_store(recover=False) as store, domain_errors():
        info = store.keys.deny(key, collection)
    _print_info(info, as_json, "changed")
