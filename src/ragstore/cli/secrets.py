"""`ragstore secrets`: the server's keys and the secrets ragstore keeps for its users (security/vault.py).

A value never travels on the command line (`ps` shows every user every argument, and shells keep history):
`set` reads it from stdin or from a hidden prompt, and no command prints one.
"""

from __future__ import annotations

import sys

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
    print_json,
    print_listing,
    stdin_is_terminal,
)

__all__ = ["app"]

app = typer.Typer(
    help="Server keys (keygen, rotate) and the secrets stored encrypted for users (list, set, delete).",
    no_args_is_help=True,
)

ScopeArg = typer.Argument(..., help="Who the secret belongs to, e.g. collection:docs or mcp:3.")
NameArg = typer.Argument(..., help="The secret's name within its scope, e.g. openai_api_key.")


@app.command("keygen")
def secrets_keygen(as_json: bool = JsonOpt) -> None:
    """Print a new random 32-byte key as base64: for API_KEY_SALT, JWT_SECRET, AUDIT_SIGNING_KEY or ENCRYPTION_KEY."""
    import base64
    import secrets

    key = base64.b64encode(secrets.token_bytes(32)).decode()
    if as_json:
        print_json({"key": key})
    else:
        sys.stdout.write(key + "\n")


@app.command("rotate")
def secrets_rotate(
    batch_size: int = typer.Option(200, min=1, max=10_000, help="Rows re-encrypted per transaction."),
    as_json: bool = JsonOpt,
) -> None:
    """Re-encrypt every secret sealed by ENCRYPTION_KEY_PREVIOUS under ENCRYPTION_KEY; safe to run again.

    Exit 1 when rows remain that neither key opens (they are named; nothing is lost)."""
    with opened_store(recover=False) as store, domain_errors():
        report = store.secrets.rotate(batch_size=batch_size)
    if as_json:
        print_json(report)
    else:
        previous = report.previous_key_id or "not set"
        out.print(
            f"re-encrypted {report.rotated} secret(s) under key {report.key_id} (previous key {previous}); "
            f"{report.already_current} already were"
        )
        for ref in report.unreadable:
            out.print(f"left as it is (neither key opens it): {ref}", highlight=False)
        if report.complete:
            out.print("every secret is under ENCRYPTION_KEY: ENCRYPTION_KEY_PREVIOUS can be removed")
    if not report.complete:
        raise typer.Exit(1)


@app.command("list")
def secrets_list(
    scope: str | None = typer.Option(None, "--scope", help="Only the secrets of this scope."),
    as_json: bool = JsonOpt,
) -> None:
    """The stored secrets: scope, name and the id of the key that sealed each (never a value)."""
    with opened_store(recover=False) as store, domain_errors():
        rows = store.secrets.list(scope)
    print_listing(
        rows,
        ("scope", "name", "key id", "updated"),
        lambda r: (r.scope, r.name, r.key_id, r.updated_at.isoformat(timespec="seconds")),
        as_json=as_json,
    )


@app.command("set")
def secrets_set(scope: str = ScopeArg, name: str = NameArg, as_json: bool = JsonOpt) -> None:
    """Store a secret, read from stdin (or a hidden prompt at a terminal), never from the command line."""
    from ragstore.security.vault import MAX_VALUE_BYTES

    if stdin_is_terminal():
        try:
            value = typer.prompt(f"value of {scope}/{name}", hide_input=True, confirmation_prompt=True)
        except typer.Abort:
            fail("no value given", EXIT_BAD_INPUT)
    else:
        # Bounded: one character more than the limit is enough for the vault to refuse it by its size.
        value = sys.stdin.read(MAX_VALUE_BYTES + 3)
        value = value.removesuffix("\n").removesuffix("\r")  # what `echo` and here-strings add
    with opened_store(recover=False) as store, domain_errors():
        info = store.secrets.put(scope, name, value)
    if as_json:
        print_json(info)
    else:
        out.print(f"stored {info.scope}/{info.name} under key {info.key_id}", highlight=False)


@app.command("delete")
def secrets_delete(scope: str = ScopeArg, name: str = NameArg, yes: bool = YesOpt, as_json: bool = JsonOpt) -> None:
    """Delete a stored secret (asks first unless --yes)."""
    confirm_destructive(f"delete the secret {scope}/{name}?", yes)
    with opened_store(recover=False) as store, domain_errors():
        store.secrets.delete(scope, name)
    if as_json:
        print_json({"deleted": True, "scope": scope, "name": name})
    else:
        out.print(f"deleted {scope}/{name}", highlight=False)
