"""OpenAI embeddings over HTTP: batching within the API's limits, retries with backoff, cost records.

Talks to `{base_url}/embeddings` with httpx, so any server that speaks the same wire format works (Azure's
compatible endpoints, a local proxy, or the fake server in `fake_openai.py` that the tests use).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray

from ragstore.config import Settings
from ragstore.embeddings.base import EmbedKind, UsageRecord, UsageSink, l2_normalise
from ragstore.errors import ConfigError, InvalidInput, Unavailable
from ragstore.telemetry import count_embedding

__all__ = ["KNOWN_DIMENSIONS", "OpenAIEmbedder", "estimate_tokens"]

log = logging.getLogger(__name__)

KNOWN_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
DEFAULT_MODEL = "text-embedding-3-small"
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_TOKENS_PER_INPUT = 8191
RETRY_STATUSES = {429, 500, 502, 503, 504}


def estimate_tokens(text: str) -> int:
    """A conservative token count without a tokenizer: cl100k averages well over 3 UTF-8 bytes per token
    for English and about 1-2 for Korean, so bytes/3 over-counts English and roughly matches Korean."""
    return len(text.encode("utf-8")) // 3 + 1


class OpenAIEmbedder:
    backend = "openai"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = DEFAULT_MODEL,
        dimensions: int | None = None,
        base_url: str = "https://api.openai.com/v1",
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        price_per_million_tokens: float = 0.02,
        max_batch_inputs: int = MAX_INPUTS_PER_REQUEST,
        usage_sink: UsageSink | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError("OPENAI_API_KEY is empty")
        native = KNOWN_DIMENSIONS.get(model)
        if dimensions is not None and not model.startswith("text-embedding-3"):
            raise ConfigError(f"RAGSTORE_EMBEDDING_MODEL={model} does not support a dimensions override")
        if dimensions is None and native is None:
            raise ConfigError(f"unknown OpenAI embedding model {model!r}; known: {', '.join(KNOWN_DIMENSIONS)}")
        self.model = model
        self.dimension = dimensions or native or 0
        self.max_input_tokens = 8191  # every OpenAI embedding model's input limit
        self._dimensions_param = dimensions
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.price_per_million_tokens = price_per_million_tokens
        self.max_batch_inputs = min(max_batch_inputs, MAX_INPUTS_PER_REQUEST)
        self.usage_sink = usage_sink
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
        )

    @classmethod
    def from_settings(cls, settings: Settings, usage_sink: UsageSink | None = None) -> OpenAIEmbedder:
        if settings.openai_api_key is None:
            raise ConfigError("OPENAI_API_KEY is required when RAGSTORE_EMBEDDING_BACKEND=openai")
        return cls(
            settings.openai_api_key.get_secret_value(),
            model=settings.embedding_model or DEFAULT_MODEL,
            base_url=settings.openai_base_url,
            timeout_s=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
            price_per_million_tokens=settings.openai_price_per_million_tokens,
            usage_sink=usage_sink,
        )

    def close(self) -> None:
        self._client.close()

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Indexes of `texts` grouped into requests within the input-count and token limits."""
        groups: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i, text in enumerate(texts):
            if not text or not text.strip():
                raise InvalidInput(f"input {i} is empty; the embeddings API refuses empty strings")
            n = estimate_tokens(text)
            if n > MAX_TOKENS_PER_INPUT:
                raise InvalidInput(
                    f"input {i} is about {n} tokens, over the model's limit of {MAX_TOKENS_PER_INPUT}: chunk it smaller"
                )
            if current and (len(current) >= self.max_batch_inputs or tokens + n > MAX_TOKENS_PER_REQUEST):
                groups.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += n
        if current:
            groups.append(current)
        return groups

    def embed(self, texts: Sequence[str], *, kind: EmbedKind) -> NDArray[np.float32]:
        # OpenAI's embedding models are symmetric: queries and documents share one encoder, so `kind` is unused.
        items = list(texts)
        if not items:
            return np.empty((0, self.dimension), dtype=np.float32)
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        for group in self.batches(items):
            out[group] = self._request([items[i] for i in group])
        return l2_normalise(out)

    def _request(self, inputs: list[str]) -> NDArray[np.float32]:
        body: dict[str, Any] = {"model": self.model, "input": inputs, "encoding_format": "float"}
        if self._dimensions_param is not None:
            body["dimensions"] = self._dimensions_param
        started = time.perf_counter()
        last_problem = ""
        for attempt in range(1, self.max_retries + 2):
            retry_after: float | None = None
            try:
                response = self._client.post("/embeddings", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return self._parse(response, inputs, attempt, started)
                message = _error_message(response)
                if response.status_code in (401, 403):
                    raise Unavailable(f"OpenAI rejected the API key (HTTP {response.status_code}): {message}")
                if response.status_code not in RETRY_STATUSES:
                    raise InvalidInput(f"OpenAI refused the request (HTTP {response.status_code}): {message}")
                last_problem = f"HTTP {response.status_code}: {message}"
                retry_after = _retry_after(response)
            if attempt > self.max_retries:
                break
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.warning("OpenAI embeddings attempt %d failed (%s); retrying in %.2fs", attempt, last_problem, delay)
            time.sleep(delay)
        raise Unavailable(f"OpenAI embeddings failed after {self.max_retries + 1} attempts: {last_problem}")

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))

    def _parse(self, response: httpx.Response, inputs: list[str], attempts: int, started: float) -> NDArray[np.float32]:
        try:
            payload = response.json()
            data = sorted(payload["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
            tokens = int(payload.get("usage", {}).get("total_tokens", 0))
        except (ValueError, KeyError, TypeError) as exc:
            raise Unavailable(f"OpenAI returned a response ragstore cannot read: {exc}") from exc
        if vectors.shape != (len(inputs), self.dimension):
            raise Unavailable(
                f"OpenAI returned vectors of shape {vectors.shape}, expected ({len(inputs)}, {self.dimension}) "
                f"for model {self.model}"
            )
        count_embedding(self.backend, self.model, tokens, tokens * self.price_per_million_tokens / 1_000_000)
        if self.usage_sink is not None:
            self.usage_sink(
                UsageRecord(
                    backend=self.backend,
                    model=self.model,
                    inputs=len(inputs),
                    tokens=tokens,
                    cost_usd=tokens * self.price_per_million_tokens / 1_000_000,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    attempts=attempts,
                )
            )
        return vectors


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or response.text[:200])
    except ValueError:
        return response.text[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
