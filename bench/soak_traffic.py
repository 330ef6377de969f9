"""The soak's clients: what each request is, what answer it expects, and the windows the sampler takes.

An unexpected answer is an error whatever its status: a 4xx means the soak's request or the server's state
went wrong (the soak sends only valid requests for things it made), a 5xx or a timeout that the server did.
The first of each kind are kept with their bodies, so that a failed run says what failed.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

__all__ = ["OPS", "Traffic", "Window"]

# Of every 100 requests: mostly searches, as a chat service sends; enough writes that the outbox, the index
# and the delete path work all the time; admin reads at the rate of a few open dashboards.
WEIGHTS = {"search": 55, "chat": 20, "ingest": 10, "delete": 7, "admin": 8}
OPS = tuple(WEIGHTS)
MODES = ("dense", "lexical", "hybrid")
WORDS = ["요금", "기간", "조건", "price", "limit", "rule", "서울", "plan"]
ADMIN_GETS = (
    "/health",
    "/health/database",
    "/health/history",
    "/metrics",
    "/admin/consistency/history",
    "/admin/backup/status",
    "/admin/backup/history",
    "/v1/audit?limit=50",
    "/v1/usage?days=1",
    "/v1/keys",
    "/v1/jobs",
    "/v1/collections",
    "/v1/collections/samples/analytics",
    "/v1/collections/samples/documents?limit=20",
    "/v1/conversations?limit=20",
)
MESSAGES_PER_CONVERSATION = 12
KEPT_ERRORS = 20


@dataclass
class Window:
    """The requests answered since the last sample, by operation."""

    seconds: float
    latencies: dict[str, list[float]]
    errors: dict[str, int]

    def figures(self, op: str) -> dict[str, float]:
        values = self.latencies[op]
        p50, p95, p99 = np.percentile(values, [50, 95, 99]) if values else (float("nan"),) * 3
        count = len(values) + self.errors[op]
        return {
            "requests": count,
            "errors": self.errors[op],
            "per_s": round(count / self.seconds, 2) if self.seconds else 0.0,
            "p50": round(float(p50), 1),
            "p95": round(float(p95), 1),
            "p99": round(float(p99), 1),
        }


@dataclass
class Traffic:
    """Shared by the clients of one soak: the bounds, the documents and conversations made, the counts."""

    base: str
    headers: dict[str, str]
    questions: list[str]
    max_requests: int
    duration_s: float
    seed: int = 7
    done: bool = False
    issued: int = 0
    totals: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    total_errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    created: list[int] = field(default_factory=list)  # documents this soak ingested and has not deleted
    deleted: int = 0
    conversations: int = 0
    messages: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.deadline = time.monotonic() + self.duration_s
        self._window_started = time.monotonic()
        self._latencies: dict[str, list[float]] = {op: [] for op in OPS}
        self._errors = dict.fromkeys(OPS, 0)
        self._ops = [op for op, weight in WEIGHTS.items() for _ in range(weight)]

    def take_window(self) -> Window:
        now = time.monotonic()
        window = Window(now - self._window_started, self._latencies, self._errors)
        self._window_started, self._latencies, self._errors = now, {op: [] for op in OPS}, dict.fromkeys(OPS, 0)
        return window

    async def client(self, http: aiohttp.ClientSession) -> None:
        """One user: a conversation of its own at a time, a request as soon as the last is answered."""
        conversation: list[Any] = [None, 0]  # id, messages in it
        while self.issued < self.max_requests and time.monotonic() < self.deadline:
            self.issued += 1
            op = self.rng.choice(self._ops)
            if op == "delete" and not self.created:
                op = "ingest"  # nothing of the soak's own to delete yet: never the corpus
            if op == "search":
                await self._search(http)
            elif op == "ingest":
                await self._ingest(http)
            elif op == "delete":
                await self._delete(http)
            elif op == "chat":
                await self._chat(http, conversation)
            else:
                await self._call(http, "admin", "GET", self.rng.choice(ADMIN_GETS))

    async def _call(
        self, http: aiohttp.ClientSession, op: str, method: str, path: str, body: Any = None, expect: int = 200
    ) -> Any:
        """The request, timed and counted; its JSON answer when it was the expected status, else None."""
        started = time.perf_counter()
        try:
            async with http.request(method, f"{self.base}{path}", json=body) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._failed(op, f"{method} {_route(path)} {type(exc).__name__}", repr(exc))
            return None
        elapsed = (time.perf_counter() - started) * 1000
        if status != expect:
            self._failed(op, f"{method} {_route(path)} {status}", raw[:300].decode(errors="replace"))
            return None
        self._latencies[op].append(elapsed)
        self.totals[op].append(elapsed)
        if not raw or not response.content_type.endswith("json"):
            return {}
        return json.loads(raw)

    def _failed(self, op: str, kind: str, detail: str) -> None:
        self._errors[op] += 1
        self.total_errors[op] += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        if len(self.error_samples) < KEPT_ERRORS:
            self.error_samples.append(f"{time.strftime('%H:%M:%S')} {kind}: {detail}")

    async def _search(self, http: aiohttp.ClientSession) -> None:
        question = self.rng.choice(self.questions)
        if self.rng.random() < 0.2:  # unique: embedded by the server, never cached
            question = f"{question} {self.rng.choice(WORDS)}{uuid.uuid4().hex[:6]}"
        body = {"query": question, "k": 5, "mode": self.rng.choice(MODES)}
        await self._call(http, "search", "POST", "/v1/collections/samples/search", body)

    async def _ingest(self, http: aiohttp.ClientSession) -> None:
        text = f"소크 시험 문서 {uuid.uuid4().hex}: 서울 지하철 환승 할인은 30분 안에 적용된다. Soak test document."
        body = {"text": text, "metadata": {"soak": True}}
        made = await self._call(http, "ingest", "POST", "/v1/collections/samples/documents", body, expect=201)
        if made:
            self.created.extend(d["document_id"] for d in made["documents"] if d.get("document_id"))

    async def _delete(self, http: aiohttp.ClientSession) -> None:
        document = self.created.pop(self.rng.randrange(len(self.created)))
        path = f"/v1/collections/samples/documents/{document}"
        if await self._call(http, "delete", "DELETE", path, expect=204) is not None:
            self.deleted += 1

    async def _chat(self, http: aiohttp.ClientSession, conversation: list[Any]) -> None:
        """Start a conversation, add to it, and now and then read it back or assemble its context."""
        cid, count = conversation
        if cid is None or count >= MESSAGES_PER_CONVERSATION:
            body = {"title": f"soak {uuid.uuid4().hex[:8]}", "collections": ["samples"]}
            made = await self._call(http, "chat", "POST", "/v1/conversations", body, expect=201)
            if made:
                conversation[:] = [made["id"], 0]
                self.conversations += 1
            return
        roll = self.rng.random()
        if roll < 0.15:
            await self._call(http, "chat", "GET", f"/v1/conversations/{cid}/messages?limit=50")
        elif roll < 0.25:
            await self._call(http, "chat", "GET", f"/v1/conversations/{cid}/context?budget=2000")
        else:
            role = "user" if count % 2 == 0 else "assistant"
            content = f"{self.rng.choice(self.questions)} ({role} turn {count}, {uuid.uuid4().hex[:6]})"
            made = await self._call(
                http, "chat", "POST", f"/v1/conversations/{cid}/messages", {"role": role, "content": content}, 201
            )
            if made:
                conversation[1] = count + 1
                self.messages += 1


def _route(path: str) -> str:
    """The path with its ids taken out, so that errors group by route."""
    parts = path.split("?")[0].split("/")
    return "/".join("{id}" if part.isdigit() or len(part) == 26 else part for part in parts)
