"""The authorization matrix: every route of the app × every kind of caller gives the status the rule says.

The routes come from `app.routes`, so a new route is in the matrix the day it is added, and a route that
declares neither `require(...)` nor `public()` fails `test_every_route_declares_who_may_call_it`. The callers
are the table `CALLERS`: each says how it presents itself (its headers) and what it was granted (None: what it
presents proves nothing); users log in and send their access token, and their expectations follow from
their role, exactly as a key's do.

A request that gets past the permission check must not change anything, so each is sent with an invalid id
(0) or body: an allowed caller gets the route's own 422 (or, for a route that takes no input, its answer),
which proves the check let it through, while the denied ones get 401, 403 or 404 from the check itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from ragstore import RagStore
from ragstore.api.app import create_app
from ragstore.api.permissions import RouteAccess, access_of, api_routes
from ragstore.clock import ManualClock
from ragstore.config import Settings
from ragstore.security.principal import ALL_COLLECTIONS, Principal, PrincipalKind, Role, role_includes

COLLECTION = "kb"  # exists; every collection route is called on it
OTHER = "other"  # exists; the collection-bound key holds its grant here only


@dataclass
class World:
    """What the callers' credentials are made from: the store (for keys) and its clock."""

    store: RagStore
    clock: ManualClock
    made: dict[str, str]


@dataclass(frozen=True)
class Caller:
    name: str
    credentials: Callable[[World], dict[str, str]]
    grants: dict[str, Role] | None  # None: the credentials prove nothing (401)


def _key(
    role: str, collections: tuple[str, ...] = (ALL_COLLECTIONS,), header: str = "bearer"
) -> Callable[[World], dict[str, str]]:
    def make(world: World) -> dict[str, str]:
        tag = f"{role}:{','.join(collections)}:{header}"
        if tag not in world.made:
            world.made[tag] = world.store.keys.create(tag, role, collections).key
        text = world.made[tag]
        return {"X-API-Key": text} if header == "x-api-key" else {"Authorization": f"Bearer {text}"}

    return make


def _expired(world: World) -> dict[str, str]:
    if "expired" not in world.made:
        world.made["expired"] = world.store.keys.create("expired", "admin", expires_in=60).key
        world.clock.advance(120)
    return {"Authorization": f"Bearer {world.made['expired']}"}


def _revoked(world: World) -> dict[str, str]:
    if "revoked" not in world.made:
        created = world.store.keys.create("revoked", "admin")
        world.store.keys.revoke(created.id)
        world.made["revoked"] = created.key
    return {"Authorization": f"Bearer {world.made['revoked']}"}


def _malformed(world: World) -> dict[str, str]:
    text = _key("admin")(world)["Authorization"]
    return {"Authorization": text[:-1] + ("A" if text[-1] != "A" else "B")}  # the checksum no longer holds


def _user(email: str, role: str, *, disabled: bool = False) -> Callable[[World], dict[str, str]]:
    """A person who logged in (POST /v1/auth/login's access token), as a chat front end would send it."""

    def make(world: World) -> dict[str, str]:
        if email not in world.made:
            world.store.users.create(email, "correct horse battery", role=role)
            world.made[email] = world.store.users.login(email, "correct horse battery").access_token
            if disabled:
                world.store.users.disable(email)  # revokes the session: its token proves nothing any more
        return {"Authorization": f"Bearer {world.made[email]}"}

    return make


CALLERS = [
    Caller("no key", lambda world: {}, None),
    Caller("expired admin key", _expired, None),
    Caller("revoked admin key", _revoked, None),
    Caller("admin key with a wrong checksum", _malformed, None),
    Caller("an access token nobody can check", lambda world: {"Authorization": "Bearer not-a-key"}, None),
    Caller("read", _key("read"), {ALL_COLLECTIONS: Role.READ}),
    Caller("write", _key("write"), {ALL_COLLECTIONS: Role.WRITE}),
    Caller("admin", _key("admin"), {ALL_COLLECTIONS: Role.ADMIN}),
    Caller("admin as X-API-Key", _key("admin", header="x-api-key"), {ALL_COLLECTIONS: Role.ADMIN}),
    Caller("metrics", _key("metrics"), {ALL_COLLECTIONS: Role.METRICS}),
    Caller("admin of another collection", _key("admin", (OTHER,)), {OTHER: Role.ADMIN}),
    Caller("read of this collection", _key("read", (COLLECTION,)), {COLLECTION: Role.READ}),
    Caller("logged-in user (write)", _user("writer@example.org", "write"), {ALL_COLLECTIONS: Role.WRITE}),
    Caller("another user (read)", _user("reader@example.org", "read"), {ALL_COLLECTIONS: Role.READ}),
    Caller("logged-in admin user", _user("admin@example.org", "admin"), {ALL_COLLECTIONS: Role.ADMIN}),
    Caller("a disabled user's token", _user("gone@example.org", "admin", disabled=True), None),
]


def expected(access: RouteAccess, grants: dict[str, Role] | None, presented: bool) -> int | None:
    """The status the permission check answers (None: it lets the caller through). Credentials that prove
    nothing are a 401 even on a public route: never a silent fall-back to anonymous."""
    if access.page and grants is None and not presented:
        return 303  # a page sends a visitor who is not logged in to its login form
    if grants is None and (presented or access.authenticated):
        return 401
    if access.role is None or grants is None:
        return None
    principal = Principal(PrincipalKind.KEY, "t", grants)
    if access.collection_param is not None:
        if not principal.sees_collection(COLLECTION):
            return 404
        return None if principal.allows(access.role, COLLECTION) else 403
    if access.on_any:
        return None if any(role_includes(r, access.role) for r in grants.values()) else 403
    return None if principal.allows(access.role) else 403


def routes() -> list[Any]:
    return api_routes(create_app(Settings()))


# Routes that are not API routes, so no dependency can declare who may call them: the OpenAPI document and
# the assets of its pages (api/routers/docs_pages.py), both public like /docs and /redoc, whose own rows come
# from `public()`, and the admin pages' style sheet and script (api/admin_ui/static: the package's own files,
# no data; the pages themselves need an admin). Each row: the route's path as served -> a request for it.
OTHER_ROUTES = {
    "/admin/assets/{path}": "/admin/assets/admin.css",
    "/openapi.json": "/openapi.json",
    "/docs/assets/{path}": "/docs/assets/swagger-ui.css",
}
OTHER_ACCESS = RouteAccess(None, None)


def other_routes() -> list[str]:
    served = iter_route_contexts(create_app(Settings()).routes)
    return [context.path_format for context in served if not isinstance(context.original_route, APIRoute)]


def request_for(route: Any, method: str) -> tuple[str, dict[str, Any]]:
    """A request that the route refuses as invalid once a caller is let through (id 0, a body of nothing known)."""
    path = re.sub(
        r"\{(\w+)(:\w+)?\}", lambda m: COLLECTION if m.group(1) in ("name", "collection") else "0", route.path_format
    )
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {"no such field": 1}
    return path, kwargs


def test_every_route_declares_who_may_call_it() -> None:
    undeclared = [f"{sorted(r.methods or ())} {r.path}" for r in routes() if access_of(r) is None]
    assert not undeclared, f"routes without Depends(require(...)) or Depends(public()): {undeclared}"
    # A mount or plain route cannot declare it: it needs a row in OTHER_ROUTES (and so in the matrix).
    assert sorted(other_routes()) == sorted(OTHER_ROUTES)


@pytest.fixture
def world(make_settings: Callable[..., Settings], embedder: Any) -> Iterator[tuple[World, TestClient]]:
    clock = ManualClock()
    # Every route once per caller: more requests than the anonymous rate limit allows (this test is not about it).
    limits = {"rate_limit_anonymous": "100000/minute", "rate_limit_default": "100000/minute"}
    with RagStore.open(make_settings(auth="required", **limits), embedder=embedder, clock=clock) as store:
        store.collections.create(COLLECTION)
        store.collections.create(OTHER)
        with TestClient(create_app(store=store)) as client:
            yield World(store, clock, {}), client


@pytest.mark.parametrize("caller", CALLERS, ids=[c.name for c in CALLERS])
def test_the_authorization_matrix(caller: Caller, world: tuple[World, TestClient]) -> None:
    state, client = world
    headers = caller.credentials(state)
    wrong = []
    checked = 0
    for route in routes():
        access = access_of(route)
        assert access is not None
        for method in sorted(route.methods or ()):
            path, kwargs = request_for(route, method)
            answer = client.request(method, path, headers=headers, follow_redirects=False, **kwargs)
            want = expected(access, caller.grants, bool(headers))
            got = answer.status_code
            checked += 1
            if want is None:
                ok = got not in (401, 403) and not (access.collection_param and got == 404)
            else:
                ok = got == want
                if want == 401:
                    ok = ok and answer.headers.get("www-authenticate") == "Bearer"
            if not ok:
                wrong.append(f"{method} {path}: {got} (want {want or 'let through'}) {answer.text[:120]}")
            assert "x-request-id" in answer.headers
            if COLLECTION not in {c.name for c in state.store.collections.list()}:
                state.store.collections.create(COLLECTION)  # an admin's DELETE went through: put it back
    for path in OTHER_ROUTES.values():
        answer = client.get(path, headers=headers, follow_redirects=False)
        want = expected(OTHER_ACCESS, caller.grants, bool(headers))
        got = answer.status_code
        checked += 1
        if got != (want or 200) or (want == 401 and answer.headers.get("www-authenticate") != "Bearer"):
            wrong.append(f"GET {path}: {got} (want {want or 200}) {answer.text[:120]}")
    assert checked >= 30
    assert not wrong, "\n".join(wrong)


def test_a_listing_shows_only_what_the_key_may_read(world: tuple[World, TestClient]) -> None:
    state, client = world
    bound = _key("read", (COLLECTION,))(state)
    other = _key("admin", (OTHER,))(state)
    everything = _key("read")(state)
    assert [c["name"] for c in client.get("/v1/collections", headers=bound).json()] == [COLLECTION]
    assert [c["name"] for c in client.get("/v1/collections", headers=other).json()] == [OTHER]
    assert {c["name"] for c in client.get("/v1/collections", headers=everything).json()} == {COLLECTION, OTHER}
    # A collection that does not exist and one the key may not see answer alike.
    missing = client.get("/v1/collections/nowhere", headers=bound)
    hidden = client.get(f"/v1/collections/{OTHER}", headers=bound)
    assert missing.status_code == hidden.status_code == 404


def test_cached_searches_keep_the_same_rule(world: tuple[World, TestClient]) -> None:
    """The fast path answers cached searches before routing: it must refuse whom the route refuses."""
    state, client = world
    state.store.documents.add(COLLECTION, [{"text": "전세 계약 갱신 전에 확인할 사항", "title": "t"}])  # type: ignore[list-item]
    body = {"query": "전세 계약", "k": 3}
    admin = _key("admin")(state)
    first = client.post(f"/v1/collections/{COLLECTION}/search", json=body, headers=admin)
    again = client.post(f"/v1/collections/{COLLECTION}/search", json=body, headers=admin)
    assert first.status_code == again.status_code == 200 and again.json()["cached"] is True
    assert again.json()["hits"] == first.json()["hits"] and first.json()["hits"]
    assert client.post(f"/v1/collections/{COLLECTION}/search", json=body).status_code == 401
    other = client.post(f"/v1/collections/{COLLECTION}/search", json=body, headers=_key("admin", (OTHER,))(state))
    assert other.status_code == 404
    metrics = client.post(f"/v1/collections/{COLLECTION}/search", json=body, headers=_key("metrics")(state))
    assert metrics.status_code == 403
    reader = _key("read", (COLLECTION,))(state)
    read = client.post(f"/v1/collections/{COLLECTION}/search", json=body, headers=reader).json()
    assert read["cached"] is True and read["hits"] == first.json()["hits"]
    revoked = _revoked(state)
    assert client.post(f"/v1/collections/{COLLECTION}/search", json=body, headers=revoked).status_code == 401


def test_a_job_is_visible_to_writers_of_its_collection_only(world: tuple[World, TestClient]) -> None:
    state, client = world
    job = state.store.jobs.enqueue("ingest_documents", {"collection": COLLECTION, "documents": []})
    assert client.get(f"/v1/jobs/{job}", headers=_key("write", (COLLECTION,))(state)).status_code == 200
    assert client.get(f"/v1/jobs/{job}", headers=_key("admin")(state)).status_code == 200
    assert client.get(f"/v1/jobs/{job}", headers=_key("admin", (OTHER,))(state)).status_code == 404
    assert client.get(f"/v1/jobs/{job}", headers=_key("read", (COLLECTION,))(state)).status_code == 403


def test_jobs_are_listed_to_writers_of_their_collection_only(world: tuple[World, TestClient]) -> None:
    """GET /v1/jobs (in the matrix as write-on-any): what each caller then sees is filtered by collection."""
    state, client = world
    mine = state.store.jobs.enqueue("ingest_documents", {"collection": COLLECTION, "documents": []})
    theirs = state.store.jobs.enqueue("ingest_documents", {"collection": OTHER, "documents": []})

    def listed(headers: dict[str, str], **params: str) -> list[int]:
        answer = client.get("/v1/jobs", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [job["id"] for job in answer.json()]

    assert listed(_key("write", (COLLECTION,))(state)) == [mine]
    assert listed(_key("admin", (OTHER,))(state)) == [theirs]
    assert listed(_key("admin")(state)) == [theirs, mine]
    hidden = client.get("/v1/jobs", params={"collection": OTHER}, headers=_key("write", (COLLECTION,))(state))
    assert hidden.status_code == 404
    assert client.get("/v1/jobs", headers=_key("read", (COLLECTION,))(state)).status_code == 403
    assert client.get("/v1/jobs", headers=_key("metrics")(state)).status_code == 403


def test_auth_off_makes_every_caller_the_local_operator(make_settings: Callable[..., Settings], embedder: Any) -> None:
    with (
        RagStore.open(make_settings(auth="off"), embedder=embedder) as store,
        TestClient(create_app(store=store)) as client,
    ):
        assert client.post("/v1/collections", json={"name": "kb"}).status_code == 201
        assert client.get("/v1/keys").status_code == 200
        echoed = client.get("/v1/collections", headers={"X-Request-ID": "abc-123"})
        assert echoed.headers["x-request-id"] == "abc-123"
        assert client.get("/health", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"] != "bad id!"
