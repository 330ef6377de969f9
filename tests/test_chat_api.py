"""/v1/conversations and /v1/messages over HTTP with real keys, on SQLite and PostgreSQL.

Ada and Bob each hold a write key of their own (a key that belongs to a user acts for that user); the admin
key sees everything. Every route answers 404 for a conversation that is another user's, soft-deleted, or
named by an id that is no ULID, exactly as for one that never existed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ragstore.api.app import create_app
from ragstore.config import Settings
from ragstore.service import RagStore

PASSWORD = "correct horse battery"


@pytest.fixture
def secured(make_settings: Callable[..., Settings], embedder: Any) -> Iterator[RagStore]:
    with RagStore.open(make_settings(auth="required"), embedder=embedder, recover=False) as store:
        yield store


@pytest.fixture
def client(secured: RagStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=secured)) as test_client:
        yield test_client


@pytest.fixture
def headers(secured: RagStore) -> dict[str, dict[str, str]]:
    ada = secured.users.create("ada@example.org", PASSWORD, role="write")
    bob = secured.users.create("bob@example.org", PASSWORD, role="write")

    def key(name: str, role: str, owner: int | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {secured.keys.create(name, role, owner_id=owner).key}"}

    return {
        "ada": key("ada", "write", ada.id),
        "bob": key("bob", "write", bob.id),
        "admin": key("root", "admin"),
        "reader": key("reader", "read", ada.id),
    }


def routes(conversation_id: str, message_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every route that names a conversation or a message, with a valid request for it."""
    base = f"/v1/conversations/{conversation_id}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"version": 1, "title": "x"}),
        ("POST", f"{base}/messages", {"role": "user", "content": "hi"}),
        ("GET", f"{base}/messages", None),
        ("GET", f"{base}/context?budget=100", None),
        ("POST", f"/v1/messages/{message_id}/feedback", {"rating": 1}),
        ("DELETE", base, None),
    ]


def test_a_conversation_over_http(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    ada = headers["ada"]
    made = client.post("/v1/conversations", json={"title": "대화"}, headers=ada)
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    first = client.post(f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "질문"}, headers=ada)
    assert first.status_code == 201, first.text
    second = client.post(
        f"/v1/conversations/{cid}/messages", json={"role": "assistant", "content": "답"}, headers=ada
    ).json()
    regen = client.post(
        f"/v1/conversations/{cid}/messages",
        json={"role": "assistant", "content": "다른 답", "parent_id": first.json()["id"]},
        headers=ada,
    ).json()
    shown = client.get(f"/v1/conversations/{cid}/messages", headers=ada).json()
    assert [m["id"] for m in shown["messages"]] == [first.json()["id"], regen["id"]]
    every = client.get(f"/v1/conversations/{cid}/messages?all_branches=true", headers=ada).json()
    assert len(every["messages"]) == 3
    version = shown["conversation"]["version"]
    switched = client.patch(
        f"/v1/conversations/{cid}", json={"version": version, "active_message_id": second["id"]}, headers=ada
    )
    assert switched.status_code == 200 and switched.json()["active_message_id"] == second["id"]
    stale = client.patch(f"/v1/conversations/{cid}", json={"version": version, "title": "late"}, headers=ada)
    assert stale.status_code == 409, stale.text
    context = client.get(f"/v1/conversations/{cid}/context?budget=1000", headers=ada)
    assert context.status_code == 200 and [m["content"] for m in context.json()["messages"]] == ["질문", "답"]
    assert context.json()["tokens"] <= 1000
    rated = client.post(f"/v1/messages/{second['id']}/feedback", json={"rating": 5, "scale": "stars"}, headers=ada)
    assert rated.status_code == 200, rated.text
    bad = client.post(f"/v1/messages/{second['id']}/feedback", json={"rating": 3}, headers=ada)
    assert bad.status_code == 422 and "thumbs" in bad.text
    listed = client.get("/v1/conversations", headers=ada).json()
    assert [c["id"] for c in listed["conversations"]] == [cid]
    for bad_request in (
        client.post(f"/v1/conversations/{cid}/messages", json={"role": "robot", "content": "x"}, headers=ada),
        client.get(f"/v1/conversations/{cid}/context?budget=0", headers=ada),
        client.get(f"/v1/conversations/{cid}/context?budget=1000001", headers=ada),
        client.get("/v1/conversations?limit=1000", headers=ada),
        client.get("/v1/conversations/" + "A" * 27, headers=ada),
        client.post("/v1/conversations", json={"title": "nul\u0000"}, headers=ada),
        client.post(
            "/v1/conversations",
            content=b'{"metadata": {"k": "\\ud800"}}',
            headers={**ada, "content-type": "application/json"},
        ),
        client.post(f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "a\u0000b"}, headers=ada),
        client.post(
            f"/v1/conversations/{cid}/messages",
            content=b'{"role": "assistant", "content": "x", "references": '
            b'[{"chunk_id": 1, "document_id": 1, "content_hash": "h", "score": 1e400}]}',
            headers={**ada, "content-type": "application/json"},
        ),
        client.get("/v1/conversations?end_user_id=%00", headers=ada),
        client.get("/v1/conversations?user=%00", headers=ada),
        client.get("/v1/conversations?cursor=%00", headers=ada),
    ):
        assert bad_request.status_code == 422, bad_request.text
    assert client.get("/v1/conversations/not-a-ulid", headers=ada).status_code == 404
    assert client.post("/v1/conversations", json={"collections": ["nope"]}, headers=ada).status_code == 404
    assert client.post("/v1/conversations", json={"user": "bob@example.org"}, headers=ada).status_code == 403


def test_another_users_conversation_is_404_on_every_route_and_admin_sees_all(
    client: TestClient, headers: dict[str, dict[str, str]]
) -> None:
    cid = client.post("/v1/conversations", json={"title": "ada's"}, headers=headers["ada"]).json()["id"]
    mid = client.post(
        f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "private"}, headers=headers["ada"]
    ).json()["id"]
    for method, path, body in routes(cid, mid):
        answer = client.request(method, path, json=body, headers=headers["bob"])
        assert answer.status_code == 404, (method, path, answer.text)
        assert "private" not in answer.text
    assert client.get("/v1/conversations", headers=headers["bob"]).json()["conversations"] == []
    assert client.get(f"/v1/conversations/{cid}", headers=headers["admin"]).status_code == 200
    assert [c["id"] for c in client.get("/v1/conversations", headers=headers["admin"]).json()["conversations"]] == [cid]
    # a read key of Ada's reads her conversation, and may change nothing
    assert client.get(f"/v1/conversations/{cid}/messages", headers=headers["reader"]).status_code == 200
    refused = client.post(
        f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "x"}, headers=headers["reader"]
    )
    assert refused.status_code == 403
    assert client.get(f"/v1/conversations/{cid}").status_code == 401


def test_a_deleted_conversation_is_404_on_every_route_at_once(
    client: TestClient, headers: dict[str, dict[str, str]]
) -> None:
    ada = headers["ada"]
    cid = client.post("/v1/conversations", json={}, headers=ada).json()["id"]
    mid = client.post(f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "hi"}, headers=ada).json()[
        "id"
    ]
    assert client.get(f"/v1/conversations/{cid}/context?budget=100", headers=ada).status_code == 200  # cached now
    assert client.delete(f"/v1/conversations/{cid}", headers=ada).status_code == 204
    for who in ("ada", "admin"):
        for method, path, body in routes(cid, mid):
            answer = client.request(method, path, json=body, headers=headers[who])
            assert answer.status_code == 404, (who, method, path, answer.text)
        assert client.get("/v1/conversations", headers=headers[who]).json()["conversations"] == []
