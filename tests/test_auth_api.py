"""Users over HTTP: /v1/auth, /v1/users and the admin page's login, cookie and CSRF token, with auth required,
through the real authentication middleware (api/auth.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragstore.api.app import create_app
from ragstore.api.user_auth import LOGIN_COOKIE, SESSION_COOKIE
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.security.login import BAD_CREDENTIALS, FREE_ATTEMPTS
from ragstore.service import RagStore

PASSWORD = "correct horse battery staple"
JSON = {"content-type": "application/json"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def secured(make_settings: Callable[..., Settings], embedder: object, clock: ManualClock) -> Iterator[RagStore]:
    with RagStore.open(make_settings(auth="required"), embedder=embedder, clock=clock) as store:  # type: ignore[arg-type]
        store.users.create("admin@example.org", PASSWORD, role="admin", display_name="Admin")
        store.users.create("reader@example.org", PASSWORD, role="read")
        yield store


@pytest.fixture
def client(secured: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=secured)) as test_client:
        yield test_client


def bearer(client: TestClient, email: str) -> dict[str, str]:
    answer = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"authorization": f"Bearer {answer.json()['access_token']}"}


def test_login_me_refresh_and_logout_over_http(client: TestClient) -> None:
    answer = client.post(
        "/v1/auth/login", json={"email": "Admin@Example.org", "password": PASSWORD}, headers={"user-agent": "t/1"}
    )
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["token_type"] == "bearer" and tokens["user"]["email"] == "admin@example.org"
    assert "password" not in answer.text and "hash" not in answer.text
    me = client.get("/v1/auth/me", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["actor"] == "user:admin@example.org"
    assert me.json()["grants"] == {"*": "admin"}
    assert client.get("/v1/auth/me").status_code == 401
    assert client.get("/v1/auth/me", headers={"authorization": "Bearer not.a.jwt"}).status_code == 401

    renewed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200 and renewed.json()["refresh_token"] != tokens["refresh_token"]
    replayed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "unauthorized"
    fresh = renewed.json()
    assert client.get("/v1/auth/me", headers={"authorization": f"Bearer {fresh['access_token']}"}).status_code == 401

    again = client.post("/v1/auth/login", json={"email": "admin@example.org", "password": PASSWORD}).json()
    assert client.post("/v1/auth/logout", json={"refresh_token": again["refresh_token"]}).status_code == 204
    assert client.post("/v1/auth/logout", json={"refresh_token": again["refresh_token"]}).status_code == 204
    assert client.get("/v1/auth/me", headers={"authorization": f"Bearer {again['access_token']}"}).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": "x" * 5000}).status_code == 422


def test_bad_logins_look_alike_and_a_locked_account_is_429_with_retry_after(client: TestClient) -> None:
    wrong = client.post("/v1/auth/login", json={"email": "admin@example.org", "password": "wrong password"})
    unknown = client.post("/v1/auth/login", json={"email": "nobody@example.org", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": {"code": "unauthorized", "message": BAD_CREDENTIALS}}
    for _ in range(FREE_ATTEMPTS - 1):
        client.post("/v1/auth/login", json={"email": "admin@example.org", "password": "wrong password"})
    locked = client.post("/v1/auth/login", json={"email": "admin@example.org", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert locked.json()["error"]["code"] == "rate_limited"
    too_long = client.post("/v1/auth/login", json={"email": "a@b.c", "password": "x" * 2000})
    assert too_long.status_code == 422
    for body in (
        '{"email": "\\ud800@example.org", "password": "pass\\u0000word"}',
        '{"email": "a@b.c", "password": "\\udfff"}',
    ):
        odd = client.post("/v1/auth/login", content=body, headers=JSON)  # lone surrogates, NUL: no 500
        assert odd.status_code in (401, 422), odd.text


def test_only_admins_manage_users(client: TestClient, secured: RagStore) -> None:
    assert client.get("/v1/users").status_code == 401
    assert client.get("/v1/users", headers=bearer(client, "reader@example.org")).status_code == 403
    admin = bearer(client, "admin@example.org")
    assert [u["email"] for u in client.get("/v1/users", headers=admin).json()] == [
        "admin@example.org",
        "reader@example.org",
    ]
    made = client.post(
        "/v1/users", headers=admin, json={"email": "New@Example.org", "password": "a long password", "role": "write"}
    )
    assert made.status_code == 201 and made.json()["email"] == "new@example.org"
    assert "a long password" not in made.text
    taken = client.post("/v1/users", headers=admin, json={"email": "new@example.org", "password": "another one"})
    assert taken.status_code == 409
    assert client.post("/v1/users", headers=admin, json={"email": "x@y.z", "password": "short"}).status_code == 422
    user_id = made.json()["id"]
    assert client.get(f"/v1/users/{user_id}", headers=admin).json()["role"] == "write"
    assert client.get("/v1/users/999999", headers=admin).status_code == 404
    changed = client.post(f"/v1/users/{user_id}/password", headers=admin, json={"password": "the newest password"})
    assert changed.status_code == 200
    login = client.post("/v1/auth/login", json={"email": "new@example.org", "password": "the newest password"})
    assert login.status_code == 200
    disabled = client.post(f"/v1/users/{user_id}/disable", headers={**admin, **JSON})
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    token = {"authorization": f"Bearer {login.json()['access_token']}"}
    assert client.get("/v1/auth/me", headers=token).status_code == 401


def admin_login(client: TestClient, email: str = "admin@example.org") -> Any:
    form = client.get("/admin/login")
    csrf = re.search(r'data-csrf="([^"]+)"', form.text)
    assert form.status_code == 200 and csrf is not None
    return client.post("/admin/login", json={"email": email, "password": PASSWORD}, headers={"x-csrf-token": csrf[1]})


def page_csrf(client: TestClient) -> str:
    page = client.get("/admin", follow_redirects=False)
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found is not None
    return found[1]


def test_the_admin_page_needs_a_logged_in_admin(client: TestClient) -> None:
    nobody = client.get("/admin", follow_redirects=False)
    assert nobody.status_code == 303 and nobody.headers["location"] == "/admin/login"
    form = client.get("/admin/login")
    nonce = form.headers["set-cookie"]
    assert LOGIN_COOKIE in nonce and "HttpOnly" in nonce and "SameSite=strict" in nonce and "Secure" not in nonce
    assert client.post("/admin/login", json={"email": "admin@example.org", "password": PASSWORD}).status_code == 403
    wrong = client.post(
        "/admin/login", json={"email": "admin@example.org", "password": PASSWORD}, headers={"x-csrf-token": "forged"}
    )
    assert wrong.status_code == 403
    logged_in = admin_login(client)
    assert logged_in.status_code == 200, logged_in.text
    cookie = next(v for k, v in logged_in.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is Secure (below)
    assert "ragstore admin" in client.get("/admin").text

    token = page_csrf(client)
    # Every POST of the page carries the session's token; without it, or with another, 403 before anything runs.
    assert client.post("/admin/logout", headers=JSON, content="{}").status_code == 403
    assert client.post("/admin/logout", headers={**JSON, "x-csrf-token": token[:-2] + "xx"}).status_code == 403
    assert client.post("/admin/consistency", json={}).status_code == 403
    assert client.post("/admin/consistency", json={}, headers={"x-csrf-token": token}).status_code == 200
    assert client.post("/admin/logout", headers={**JSON, "x-csrf-token": token}, content="{}").status_code == 204
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_a_user_who_is_not_an_admin_gets_403(client: TestClient) -> None:
    assert admin_login(client, "reader@example.org").status_code == 200
    page = client.get("/admin", follow_redirects=False)
    assert page.status_code == 403 and "admin role" in page.json()["error"]["message"]


def test_the_cookie_is_secure_over_tls(secured: RagStore) -> None:
    with TestClient(create_app(store=secured), base_url="https://testserver") as client:
        answer = admin_login(client)
        assert answer.status_code == 200
        cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v)
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert page_csrf(client)
