"""The shipped local embedding models: encode speed and retrieval quality on the sample corpus.

    python bench/embedding_models.py

Quality: every document of samples/corpus is ingested into a fresh store per model; each question of
samples/questions.jsonl is searched and the rank of its document noted (hit@1, hit@5, MRR per language).
Speed: texts/s for short sentences and ~130-200 character passages, Korean and English, batch of 32-64.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.embeddings.local import LOCAL_MODELS, LocalEmbedder

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
console = Console()

KO_PASSAGE = (
    "전세 보증금은 대부분의 세입자에게 가장 큰 재산이다. 계약서에 서명하기 전에 몇 가지를 반드시 확인해야 "
    "보증금을 지킬 수 있다. 계약 당일에 등기부등본을 새로 떼어 집주인이 실제 소유자인지 본다."
)
EN_PASSAGE = (
    "Every API key is subject to rate limits that protect the service from overload and keep response times "
    "predictable for all customers. The free plan allows 60 requests per minute and 10,000 requests per day."
)
SPEED_SETS = {
    "ko sentence": [f"서울 지하철은 30분 안에 갈아타면 환승 할인이 적용된다 {i}." for i in range(64)],
    "en sentence": [f"Standard shipping takes three to five business days {i}." for i in range(64)],
    "ko passage": [f"{KO_PASSAGE} {i}" for i in range(32)],
    "en passage": [f"{EN_PASSAGE} {i}" for i in range(32)],
}


def speed(model: str) -> dict[str, float]:
    embedder = LocalEmbedder(model)
    embedder.embed(["warm up", "준비"], kind="document")
    rates = {}
    for name, texts in SPEED_SETS.items():
        started = time.perf_counter()
        embedder.embed(texts, kind="document")
        rates[name] = len(texts) / (time.perf_counter() - started)
    return rates


def quality(model: str) -> dict[str, tuple[float, float, float]]:
    questions = [json.loads(line) for line in (SAMPLES / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    ranks: dict[str, list[int | None]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        RagStore.open(Settings(data_dir=Path(tmp), embedding_model=model), embedder=LocalEmbedder(model)) as store,
    ):
        store.collections.create("samples")
        store.documents.ingest_paths("samples", [SAMPLES / "corpus"])
        for q in questions:
            docs: list[str] = []
            for hit in store.search("samples", q["question"], k=20).hits:
                path, _, record = hit.source_uri.partition("#")
                source = str(Path(path).resolve().relative_to(SAMPLES)) + (f"#{record}" if record else "")
                if source not in docs:
                    docs.append(source)
            rank = docs.index(q["expected_source"]) + 1 if q["expected_source"] in docs else None
            ranks.setdefault(q["lang"], []).append(rank)
    out = {}
    for lang, found in ranks.items():
        n = len(found)
        out[lang] = (
            sum(r == 1 for r in found) / n,
            sum(r is not None and r <= 5 for r in found) / n,
            sum(1 / r for r in found if r) / n,
        )
    return out


def main() -> None:
    speed_table = Table(title="encode speed, texts/s (2 cores)")
    speed_table.add_column("model")
    for name in SPEED_SETS:
        speed_table.add_column(name, justify="right")
    quality_table = Table(title="retrieval on samples/questions.jsonl (25 ko, 24 en, 11 cross-lingual)")
    for col in (
        "model",
        "ko hit@1",
        "ko hit@5",
        "ko MRR",
        "en hit@1",
        "en MRR",
        "cross hit@1",
        "cross hit@5",
        "cross MRR",
    ):
        quality_table.add_column(col, justify="right" if col != "model" else "left")
    for model in LOCAL_MODELS:
        rates = speed(model)
        speed_table.add_row(model, *(f"{rates[name]:.1f}" for name in SPEED_SETS))
        q = quality(model)
        quality_table.add_row(
            model,
            f"{q['ko'][0]:.2f}", f"{q['ko'][1]:.2f}", f"{q['ko'][2]:.3f}",
            f"{q['en'][0]:.2f}", f"{q['en'][2]:.3f}",
            f"{q['cross'][0]:.2f}", f"{q['cross'][1]:.2f}", f"{q['cross'][2]:.3f}",
        )  # fmt: skip
    console.print(speed_table)
    console.print(quality_table)


if __name__ == "__main__":
    main()
