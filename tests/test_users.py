"""Users, passwords and sessions through `store.users`, on SQLite and PostgreSQL, with a ManualClock.

Logins, refreshes and lockouts are timed by the injected clock: a test moves it instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select, text

from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.db.security_models import AuditLog, User, UserSession
from ragstore.errors import Conflict, InvalidInput, NotFound, TooManyRequests, Unauthorized
from ragstore.runtime.scheduler import SESSION_CLEANUP_JOB, MaintenanceScheduler, run_session_cleanup
from ragstore.security.login import BAD_CREDENTIALS, FREE_ATTEMPTS, lock_seconds
from ragstore.security.principal import PrincipalKind, Role
from ragstore.security.sessions import SESSION_RECHECK_S
from ragstore.service import RagStore

PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def users_store(make_settings: Callable[..., Settings], embedder: object, clock: ManualClock) -> Iterator[RagStore]:
    with RagStore.open(make_settings(), embedder=embedder, clock=clock, recover=False) as store:  # type: ignore[arg-type]
        yield store


def actions(store: RagStore) -> list[tuple[str, str, str]]:
    with store.db.read() as session:
        rows = session.scalars(select(AuditLog).order_by(AuditLog.sequence))
        return [(r.action, r.target, r.outcome) for r in rows]


def test_every_way_of_naming_a_user_finds_the_same_one_or_none(users_store: RagStore) -> None:
    """`users get`, `users erase` and a conversation's `user` share one lookup (security/user_lookup.py)."""
    made = users_store.users.create("ada@example.org", PASSWORD)
    for name in (made.id, str(made.id), f" {made.id} ", "ADA@example.org", "  ada@EXAMPLE.org "):
        assert users_store.users.get(name).id == made.id, name
    # Unicode digits pass str.isdigit but not int(); a number past int64 or past int()'s 4,300 digits is no id.
    for name in ("\u00b3", "\u0663", "9" * 20, "9" * 5000, "0", -1, "nobody@example.org"):
        with pytest.raises(NotFound):
            users_store.users.get(name)


def test_users_are_created_listed_and_never_show_their_hash(users_store: RagStore) -> None:
    users = users_store.users
    made = users.create("Ada@Example.org", PASSWORD, display_name="Ada", role="admin")
    assert (made.email, made.role, made.active, made.display_name) == ("ada@example.org", "admin", True, "Ada")
    assert "password" not in str(made.model_dump()) and "argon2" not in str(made.model_dump())
    with pytest.raises(Conflict):
        users.create("ADA@example.org", PASSWORD)
    with pytest.raises(InvalidInput, match="8 to 1024"):
        users.create("bob@example.org", "short")
    with pytest.raises(InvalidInput, match="NUL"):
        users.create("bob@example.org", "long enough\x00")
    with pytest.raises(InvalidInput, match="e-mail"):
        users.create("not an address", PASSWORD)
    with pytest.raises(InvalidInput, match="role"):
        users.create("bob@example.org", PASSWORD, role="root")
    assert [u.email for u in users.list()] == ["ada@example.org"]
    assert users.get("ADA@example.org").id == made.id == users.get(made.id).id
    with pytest.raises(NotFound):
        users.get("nobody@example.org")
    with users_store.db.read() as session:
        stored = session.scalars(select(User.password_hash)).one()
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert ("user.create", "user:ada@example.org", "success") in actions(users_store)


def test_login_gives_a_jwt_principal_that_refresh_rotates_and_logout_ends(
    users_store: RagStore, clock: ManualClock
) -> None:
    users = users_store.users
    made = users.create("ada@example.org", PASSWORD, role="write")
    login = users.login("ADA@example.org ", PASSWORD, "pytest", "10.0.0.1")
    claims = jwt.decode(login.access_token, options={"verify_signature": False})
    assert claims["sub"] == str(made.id) and claims["role"] == "write" and claims["sid"] == str(login.session_id)
    assert claims["exp"] - claims["iat"] == users_store.settings.access_token_ttl_s
    principal = users.access_token_principal(login.access_token)
    assert principal is not None and principal.kind is PrincipalKind.USER
    assert (principal.name, principal.user_id, dict(principal.grants)) == (
        "ada@example.org",
        made.id,
        {"*": Role.WRITE},
    )
    assert users.access_token_principal(login.access_token + "x") is None
    assert (
        users.access_token_principal(
            jwt.encode({"sub": "1", "sid": "1"}, "another server secret of 32 bytes", algorithm="HS256")
        )
        is None
    )
    with users_store.db.read() as session:
        row = session.scalars(select(UserSession)).one()
        assert (row.user_agent, row.client_address) == ("pytest", "10.0.0.1")
        assert login.refresh_token not in row.token_hash

    clock.advance(users_store.settings.access_token_ttl_s)  # the access token expires on the injected clock
    assert users.access_token_principal(login.access_token) is None
    renewed = users.refresh(login.refresh_token)
    assert renewed.refresh_token != login.refresh_token and renewed.session_id != login.session_id
    assert users.access_token_principal(renewed.access_token) is not None

    assert users.logout(renewed.refresh_token) is True
    assert users.logout(renewed.refresh_token) is False
    assert users.access_token_principal(renewed.access_token) is None  # at once in this process
    with pytest.raises(Unauthorized):
        users.refresh("no such token")
    done = actions(users_store)
    assert ("login.success", "user:ada@example.org", "success") in done
    assert ("session.logout", "user:ada@example.org", "success") in done


def test_a_replayed_refresh_token_revokes_every_session_of_its_user(users_store: RagStore) -> None:
    users = users_store.users
    users.create("ada@example.org", PASSWORD)
    first = users.login("ada@example.org", PASSWORD)
    other = users.login("ada@example.org", PASSWORD)
    users.refresh(first.refresh_token)  # the legitimate client rotates
    with pytest.raises(Unauthorized):
        users.refresh(first.refresh_token)  # the thief replays the spent token
    assert users.access_token_principal(other.access_token) is None
    with pytest.raises(Unauthorized):
        users.refresh(other.refresh_token)
    assert ("session.reuse", "user:ada@example.org", "denied") in actions(users_store)


def test_refresh_tokens_expire_and_the_cleanup_deletes_expired_sessions(
    users_store: RagStore, clock: ManualClock
) -> None:
    users = users_store.users
    users.create("ada@example.org", PASSWORD)
    old = users.login("ada@example.org", PASSWORD)
    users.logout(old.refresh_token)
    clock.advance(users_store.settings.refresh_token_ttl_s / 2)
    young = users.login("ada@example.org", PASSWORD)
    clock.advance(users_store.settings.refresh_token_ttl_s / 2)
    assert run_session_cleanup(users_store) == 1  # the old, revoked one; the young one lives on
    with pytest.raises(Unauthorized):
        users.refresh(old.refresh_token)
    assert users.refresh(young.refresh_token).user.email == "ada@example.org"
    clock.advance(users_store.settings.refresh_token_ttl_s + 1)
    assert run_session_cleanup(users_store) == 2  # the rotated row and its successor
    with users_store.db.read() as session:
        assert session.scalars(select(UserSession)).all() == []
    scheduler = MaintenanceScheduler(users_store, check_schedule="", check_repair=False, session_cleanup=True)
    assert SESSION_CLEANUP_JOB in scheduler.jobs


def test_unknown_email_and_wrong_password_are_the_same_401(users_store: RagStore) -> None:
    users = users_store.users
    users.create("ada@example.org", PASSWORD)
    messages = []
    for email, password in (("ada@example.org", "wrong password"), ("eve@example.org", PASSWORD)):
        with pytest.raises(Unauthorized) as caught:
            users.login(email, password)
        messages.append(caught.value.message)
    assert messages == [BAD_CREDENTIALS, BAD_CREDENTIALS]
    failed = [a for a in actions(users_store) if a[0] == "login.failed"]
    assert failed == [
        ("login.failed", "user:ada@example.org", "failure"),
        ("login.failed", "user:eve@example.org", "failure"),
    ]
    with users_store.db.read() as session:
        details = [r.details for r in session.scalars(select(AuditLog).where(AuditLog.action == "login.failed"))]
    assert "wrong password" not in str([d for d in details if "password" in d])  # the reason, never the password
    assert PASSWORD not in str(details)


def test_failed_logins_lock_the_account_exponentially(users_store: RagStore, clock: ManualClock) -> None:
    users = users_store.users
    users.create("ada@example.org", PASSWORD)
    for _ in range(FREE_ATTEMPTS):
        with pytest.raises(Unauthorized):
            users.login("ada@example.org", "wrong password")
    with pytest.raises(TooManyRequests) as locked:
        users.login("ada@example.org", PASSWORD)  # even the right password waits
    assert locked.value.retry_after_s == pytest.approx(lock_seconds(FREE_ATTEMPTS))
    clock.advance(lock_seconds(FREE_ATTEMPTS))
    with pytest.raises(Unauthorized):
        users.login("ada@example.org", "wrong again")
    with pytest.raises(TooManyRequests) as longer:
        users.login("ada@example.org", PASSWORD)
    assert longer.value.retry_after_s == pytest.approx(2 * lock_seconds(FREE_ATTEMPTS))
    clock.advance(longer.value.retry_after_s)
    assert users.login("ada@example.org", PASSWORD).user.locked_until is None
    with users_store.db.read() as session:
        assert session.scalars(select(User.failed_logins)).one() == 0
    assert ("login.failed", "user:ada@example.org", "denied") in actions(users_store)
    # An unknown e-mail is locked out the same way, so a lockout does not tell an account exists.
    for _ in range(FREE_ATTEMPTS):
        with pytest.raises(Unauthorized):
            users.login("eve@example.org", "guess")
    with pytest.raises(TooManyRequests):
        users.login("eve@example.org", "guess")


def test_disabling_or_a_new_password_ends_every_session(users_store: RagStore, clock: ManualClock) -> None:
    users = users_store.users
    users.create("ada@example.org", PASSWORD, role="admin")
    login = users.login("ada@example.org", PASSWORD)
    cookie = users.cookie_login("ada@example.org", PASSWORD)
    assert users.session_cookie_principal(cookie.token) is not None
    assert users.session_cookie_principal(login.refresh_token) is None  # a refresh token is no cookie
    users.set_password("ada@example.org", "a brand new password")
    assert users.access_token_principal(login.access_token) is None
    assert users.session_cookie_principal(cookie.token) is None
    with pytest.raises(Unauthorized):
        users.login("ada@example.org", PASSWORD)
    fresh = users.login("ada@example.org", "a brand new password")
    users.disable("ada@example.org")
    assert users.access_token_principal(fresh.access_token) is None
    with pytest.raises(Unauthorized) as caught:
        users.login("ada@example.org", "a brand new password")
    assert caught.value.message == BAD_CREDENTIALS  # a disabled account looks like any wrong login
    assert {"user.password", "user.disable"} <= {a[0] for a in actions(users_store)}


def test_another_process_sees_a_revocation_within_the_documented_bound(
    users_store: RagStore, make_settings: Callable[..., Settings], embedder: object, clock: ManualClock
) -> None:
    users_store.users.create("ada@example.org", PASSWORD)
    login = users_store.users.login("ada@example.org", PASSWORD)
    with RagStore.open(make_settings(), embedder=embedder, clock=clock, recover=False) as other:  # type: ignore[arg-type]
        assert other.users.access_token_principal(login.access_token) is not None  # now cached there
        users_store.users.logout(login.refresh_token)
        assert other.users.access_token_principal(login.access_token) is not None  # within the bound
        clock.advance(SESSION_RECHECK_S)
        assert other.users.access_token_principal(login.access_token) is None


def test_no_password_or_token_reaches_the_database_file(users_store: RagStore) -> None:
    users_store.users.create("ada@example.org", PASSWORD, role="admin")
    login = users_store.users.login("ada@example.org", PASSWORD)
    cookie = users_store.users.cookie_login("ada@example.org", PASSWORD)
    if users_store.settings.is_sqlite:
        users_store.db.dispose()
        data = b"".join(p.read_bytes() for p in users_store.settings.data_dir.rglob("*.db*") if p.is_file())
    else:  # every row of every table of the store's schema, as PostgreSQL prints it
        with users_store.db.read() as session:
            tables = session.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            data = "\n".join(
                str(row) for table in list(tables) for row in session.execute(text(f'SELECT t::text FROM "{table}" t'))
            ).encode()
    assert b"ada@example.org" in data  # the data was read
    for secret in (PASSWORD, login.refresh_token, cookie.token, login.access_token):
        assert secret.encode() not in data


def test_lock_seconds_double_up_to_the_cap() -> None:
    assert lock_seconds(FREE_ATTEMPTS - 1) == 0
    assert lock_seconds(FREE_ATTEMPTS + 1) == 2 * lock_seconds(FREE_ATTEMPTS)
    assert lock_seconds(10_000) == lock_seconds(100) > 0
    assert timedelta(seconds=lock_seconds(100)) <= timedelta(minutes=15)


def test_a_hash_of_older_parameters_is_replaced_at_the_next_login(users_store: RagStore, clock: ManualClock) -> None:
    from argon2 import PasswordHasher

    from ragstore.security.passwords import PasswordHashing
    from ragstore.security.users import UserService

    c = users_store.components
    cheap = PasswordHashing(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    old = UserService(db=c.db, settings=c.settings, audit_trail=c.audit_trail, clock=clock, hashing=cheap)
    old.create("ada@example.org", PASSWORD)
    with users_store.db.read() as session:
        assert "m=8192" in session.scalars(select(User.password_hash)).one()
    users_store.users.login("ada@example.org", PASSWORD)
    with users_store.db.read() as session:
        renewed = session.scalars(select(User.password_hash)).one()
    assert renewed.startswith("$argon2id$") and "m=65536" in renewed
    assert users_store.users.login("ada@example.org", PASSWORD).user.email == "ada@example.org"


def test_text_no_account_could_have_is_a_plain_401(users_store: RagStore) -> None:
    users_store.users.create("ada@example.org", PASSWORD)
    for email, password in (("ada@example.org", PASSWORD + "\x00"), ("\ud800@example.org", PASSWORD), ("a", "\udfff")):
        with pytest.raises(Unauthorized):
            users_store.users.login(email, password)
    with pytest.raises(InvalidInput):
        users_store.users.set_password("ada@example.org", "surrogate \udfff here")
