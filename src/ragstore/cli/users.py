"""`ragstore users`: create, list and disable the users who log in (the admin page, /v1/auth), set passwords.

A password is never an argument (it would sit in the shell history and in `ps`): it is asked for at the
terminal, twice, or read as one line from stdin with `--password-stdin` (for scripts).
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
    plain,
    print_json,
    print_listing,
    stdin_is_terminal,
)

__all__ = ["app"]

app = typer.Typer(help="Create, list, disable and erase users; set their passwords.", no_args_is_help=True)

PasswordStdinOpt = typer.Option(
    False, "--password-stdin", help="Read the password from the first line of stdin instead of asking for it."
)
UserArg = typer.Argument(..., help="The user's e-mail address or id.")


def _password(from_stdin: bool) -> str:
    """The password from stdin (one line) or asked twice at the terminal; exit 2 when neither can be had."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            fail("--password-stdin: stdin held no password", EXIT_BAD_INPUT)
        return password
    if not stdin_is_terminal():
        fail("no terminal to ask for the password: pass --password-stdin and send it on stdin", EXIT_BAD_INPUT)
    try:
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    except typer.Abort:
        fail("no password given", EXIT_BAD_INPUT)


@app.command("create")
def users_create(
    email: str = typer.Argument(..., help="The e-mail address the user logs in with (unique, any case)."),
    role: str = typer.Option("read", "--role", help="read, write, admin or metrics."),
    name: str = typer.Option("", "--name", help="A display name."),
    password_stdin: bool = PasswordStdinOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create a user who can log in (to the admin page with the admin role)."""
    password = _password(password_stdin)
    with opened_store(recover=False) as store, domain_errors():
        user = store.users.create(email, password, display_name=name, role=role)
    if as_json:
        print_json(user)
    else:
        out.print(f"created user [bold]{plain(user.email)}[/] (id {user.id}, role {user.role})")


@app.command("list")
def users_list(as_json: bool = JsonOpt) -> None:
    """Every user: e-mail, name, role, whether active."""
    with opened_store(recover=False) as store, domain_errors():
        rows = store.users.list()
    print_listing(
        rows,
        ("id", "email", "name", "role", "active", "locked until"),
        lambda u: (
            str(u.id),
            u.email,
            u.display_name,
            u.role,
            "yes" if u.active else "no",
            u.locked_until.isoformat() if u.locked_until else "",
        ),
        as_json=as_json,
    )


@app.command("disable")
def users_disable(user: str = UserArg, as_json: bool = JsonOpt) -> None:
    """Disable a user: no more logins, and every session of theirs ends."""
    with opened_store(recover=False) as store, domain_errors():
        info = store.users.disable(user)
    if as_json:
        print_json(info)
    else:
        out.print(f"disabled user [bold]{plain(info.email)}[/]; their sessions are ended")


@app.command("set-password")
def users_set_password(user: str = UserArg, password_stdin: bool = PasswordStdinOpt, as_json: bool = JsonOpt) -> None:
    """Set a user's password (every session of theirs ends, a lockout is lifted)."""
    with opened_store(recover=False) as store, domain_errors():
        store.users.get(user)  # an unknown user is exit 2 before the password is asked for
    password = _password(password_stdin)
    with opened_store(recover=False) as store, domain_errors():
        info = store.users.set_password(user, password)
    if as_json:
        print_json(info)
    else:
        out.print(f"set the password of [bold]{plain(info.email)}[/]; their sessions are ended")


@app.command("erase")
def users_erase(user: str = UserArg, yes: bool = YesOpt, as_json: bool = JsonOpt) -> None:
    """Erase a user: their conversations, messages, feedback, sessions, keys and the user; usage rows lose
    what points at them. The audit log records the erasure (counts only)."""
    with opened_store(recover=False) as store, domain_errors():
        store.users.get(user)  # an unknown user is exit 2 before anything is asked
    confirm_destructive(f"Erase user {user} and everything of theirs? This cannot be undone.", yes)
    with opened_store(recover=False) as store, domain_errors():
        report = store.chat.erase_user(user)
    if as_json:
        print_json(report)
        return
    out.print(
        f"erased user {report.user_id}: {report.conversations} conversations, {report.messages} messages, "
        f"{report.feedback} ratings, {report.sessions} sessions, {report.keys} keys; "
        f"{report.usage_rows_scrubbed} usage rows scrubbed"
    )
