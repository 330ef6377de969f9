"""The client's own logic, against an `httpx.MockTransport`: which answers and failures are retried, how long
it waits (Retry-After in seconds or as an HTTP date, the backoff, the cap), and how an error answer becomes a
domain error. No real sleep: the client is given a sleep that records and a ManualClock."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from ragstore.client import AsyncRagStoreClient, RagStoreClient
from ragstore.clock import ManualClock
from ragstore.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientStorage,
    InvalidInput,
    NotFound,
    OperationFailed,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)

COLLECTION = {"name": "kb", "description": "", "embedding_model": "m", "dimension": 4, "metric": "cosine"}
ADDED = {"collection": "kb", "documents": [{"source_uri": "a", "status": "added", "document_id": 1}]}


def error(status: int, code: str, message: str = "no", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


class Script:
    """Answers the requests in turn (a response, or an exception to raise) and records what was asked."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client_for(script: Script, **options: Any) -> tuple[RagStoreClient, list[float]]:
    slept: list[float] = []
    options.setdefault("clock", ManualClock())
    made = RagStoreClient(
        "http://ragstore.test", "rs_key", transport=httpx.MockTransport(script), sleep=slept.append, **options
    )
    return made, slept


def test_429_and_503_are_retried_after_retry_after_in_seconds() -> None:
    script = Script(
        error(429, "rate_limited", headers={"Retry-After": "2"}),
        error(503, "unavailable", headers={"Retry-After": "0.5"}),
        httpx.Response(200, json=COLLECTION),
    )
    client, slept = client_for(script)
    assert client.collections.get("kb").name == "kb"
    assert slept == [2.0, 0.5] and len(script.requests) == 3
    assert script.requests[0].headers["authorization"] == "Bearer rs_key"


def test_retry_after_as_an_http_date_is_read_against_the_clock() -> None:
    clock = ManualClock()
    when = format_datetime(clock.now() + timedelta(seconds=7), usegmt=True)
    script = Script(error(503, "unavailable", headers={"Retry-After": when}), httpx.Response(200, json=[]))
    client, slept = client_for(script, clock=clock)
    assert client.collections.list() == []
    assert 6.0 <= slept[0] <= 7.0


def test_without_retry_after_the_backoff_doubles_and_every_wait_is_capped() -> None:
    script = Script(*[error(503, "unavailable") for _ in range(4)])
    client, slept = client_for(script, retries=3, backoff=0.5)
    with pytest.raises(Unavailable):
        client.collections.list()
    assert slept == [0.5, 1.0, 2.0] and len(script.requests) == 4
    script = Script(error(429, "rate_limited", headers={"Retry-After": "3600"}), httpx.Response(200, json=[]))
    client, slept = client_for(script, max_wait=10.0)
    client.collections.list()
    assert slept == [10.0]


def test_the_last_429_is_raised_with_its_retry_after() -> None:
    script = Script(*[error(429, "rate_limited", "slow down", headers={"Retry-After": "4"}) for _ in range(2)])
    client, slept = client_for(script, retries=1)
    with pytest.raises(TooManyRequests) as refused:
        client.search("kb", "q")
    assert refused.value.retry_after_s == 4.0 and refused.value.message == "slow down" and slept == [4.0]


def test_a_post_that_adds_documents_is_retried_on_429_and_503_but_not_after_a_lost_answer() -> None:
    script = Script(error(429, "rate_limited"), error(503, "unavailable"), httpx.Response(201, json=ADDED))
    client, slept = client_for(script)
    assert client.documents.add_text("kb", "text").status == "added"
    assert len(script.requests) == 3 and slept == [0.5, 1.0]
    # The server may have stored them before the answer was lost: not sent again.
    script = Script(httpx.ReadTimeout("timed out"), httpx.Response(201, json=ADDED))
    client, slept = client_for(script, timeout=5.0)
    with pytest.raises(Unavailable) as lost:
        client.documents.add_text("kb", "text")
    assert len(script.requests) == 1 and "did not answer within 5 s" in lost.value.message
    # A connection that never opened sent nothing: any request is sent again.
    script = Script(httpx.ConnectError("refused"), httpx.Response(201, json=ADDED))
    client, _ = client_for(script)
    assert client.documents.add_text("kb", "text").document_id == 1 and len(script.requests) == 2


def test_a_read_or_a_search_is_retried_after_a_lost_answer() -> None:
    hits = {"collection": "kb", "query": "q", "k": 1, "hits": [], "took_ms": 1.0}
    script = Script(httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("cut"), httpx.Response(200, json=hits))
    client, slept = client_for(script)
    assert client.search("kb", "q", k=1).hits == [] and slept == [0.5, 1.0]
    body = json.loads(script.requests[-1].content)
    assert body == {"query": "q", "k": 1, "offset": 0, "explain": False}


def test_4xx_and_other_5xx_are_not_retried() -> None:
    for answer in (error(404, "not_found"), error(500, "operation_failed"), error(409, "conflict")):
        script = Script(answer)
        client, slept = client_for(script)
        with pytest.raises(Exception):  # noqa: B017  # the kind is the next test's subject
            client.collections.list()
        assert len(script.requests) == 1 and slept == []


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "invalid_input", BadRequest),
        (401, "unauthorized", Unauthorized),
        (403, "forbidden", Forbidden),
        (404, "not_found", NotFound),
        (405, "method_not_allowed", InvalidInput),
        (409, "conflict", Conflict),
        (413, "payload_too_large", PayloadTooLarge),
        (422, "invalid_input", InvalidInput),
        (422, "backup_damaged", InvalidInput),
        (500, "operation_failed", OperationFailed),
        (500, "config_error", OperationFailed),  # the server's configuration is not the client's to fix
        (502, "http_error", OperationFailed),
        (507, "insufficient_storage", InsufficientStorage),
    ],
)
def test_each_status_becomes_its_domain_error_with_the_servers_code(
    status: int, code: str, kind: type[Exception]
) -> None:
    body = {"error": {"code": code, "message": "what went wrong", "details": {"field": "k"}}}
    client, _ = client_for(Script(httpx.Response(status, json=body)))
    with pytest.raises(kind) as raised:
        client.collections.get("kb")
    assert type(raised.value) is kind
    assert raised.value.code == code and raised.value.message == "what went wrong"  # type: ignore[attr-defined]
    assert raised.value.details == {"field": "k"}  # type: ignore[attr-defined]


def test_an_answer_that_is_not_ragstores_is_named_by_its_status() -> None:
    client, _ = client_for(Script(httpx.Response(502, text="<html>Bad Gateway</html>")))
    with pytest.raises(OperationFailed) as raised:
        client.collections.list()
    assert raised.value.message == "HTTP 502 from http://ragstore.test/v1/collections: <html>Bad Gateway</html>"


def test_the_async_client_follows_the_same_rule() -> None:
    script = Script(error(429, "rate_limited", headers={"Retry-After": "1"}), httpx.Response(200, json=COLLECTION))
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    async def run() -> str:
        async with AsyncRagStoreClient(
            "http://ragstore.test", transport=httpx.MockTransport(script), sleep=record
        ) as client:
            return (await client.collections.get("kb")).name

    assert asyncio.run(run()) == "kb" and slept == [1.0]


def test_a_large_ingest_queued_as_a_job_is_followed_to_its_outcomes() -> None:
    job = {"id": 7, "kind": "ingest_documents", "attempts": 1, "lease_owner": None, "lease_expires_at": None,
           "last_error": None, "result": None, "created_at": None}  # fmt: skip
    done = {**job, "state": "done", "result": {"statuses": ["added", "unchanged"], "document_ids": [1, 2]}}
    accepted = {"collection": "kb", "job_id": 7, "status_url": "/v1/jobs/7", "documents": 2}
    script = Script(
        httpx.Response(202, json=accepted),
        httpx.Response(200, json={**job, "state": "leased"}),
        httpx.Response(200, json=done),
    )
    client, slept = client_for(script)
    outcomes = client.documents.add("kb", [{"text": "a", "source_uri": "a"}, {"text": "b"}])
    assert [(o.source_uri, o.status, o.document_id) for o in outcomes] == [("a", "added", 1), ("", "unchanged", 2)]
    assert slept == [0.2] and script.requests[1].url.path == "/v1/jobs/7"
