"""Measuring a collection's search breadth (HNSW ef_search) against a recall target: the curve and the choice.

A graph search is approximate: the wider it looks (ef), the more of the true nearest neighbours it finds and
the longer it takes, and the breadth a target needs depends on the collection (2,000 vectors or 2,000,000,
tight clusters or loose ones). `measure` finds it on the collection's own vectors:

1. **Queries.** `sample` stored vectors are drawn at random, and each is moved off its graph node: a random
   direction orthogonal to it, of length NOISE times the distance to its nearest stored neighbour, then
   normalised. A stored vector used as it is finds itself and, through its own links, its neighbours: recall
   measured so is flattering. A moved one is a point the graph has never seen, as a user's query is. The
   share was measured against held-out queries (bench/ef_tuning.py, docs/benchmarks.md): at 0.5 the curve
   stays within about 0.01 of theirs at 10k, 100k and 1M vectors; nearer (0.3) it flatters small
   collections (0.018 at 10k, at the smallest breadth), farther (a whole nearest-neighbour distance) it
   asks for about twice the breadth at 100k.
2. **Truth.** The exact top 10 of each query, by brute force over every vector of the collection, read in
   batches (`iter_ids` and `get`): memory stays at one batch, time grows with the collection's size.
3. **The ladder.** Each breadth of LADDER in turn: recall@10 of the queries against the truth (with its
   standard error), and the median latency of a search at that breadth through the backend (`search_at`,
   which no other search sees). The climb stops at the first breadth that meets the target, its recall
   within one standard error of it or above (the sample cannot tell them apart; paying for the next breadth
   would be paying for noise); that one is chosen. If none does, the graph itself tops out below the target
   (its build parameters, not the search breadth, limit it): the smallest breadth within ACCURACY of the
   best recall measured is chosen, and `met` is False.

An index whose scores are approximate (i8) has its search ask for `depth` candidates, which SQL's float32 copies
re-rank (search/rerank.py): a query's true top K need only be among them, so that is what its recall counts.
Asking the graph's own top K in order would measure the 8-bit rounding, not the breadth: no breadth repairs
it, and the tuner would climb to the top of the ladder for nothing.

Bounded: at most MAX_SAMPLE queries, at most len(LADDER) breadths, one batch of vectors in memory; a
`should_stop` callback is asked between steps (a closing store stops a measurement within one step).
Nothing here writes: `indexing/tuning.py` keeps the result in SQL and sets the breadth on the index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ragstore.errors import Unavailable
from ragstore.vectors.base import Ids, SearchMode, VectorIndex, Vectors

__all__ = [
    "ACCURACY",
    "LADDER",
    "MAX_SAMPLE",
    "NOISE",
    "SAMPLE",
    "CurvePoint",
    "K",
    "Measurement",
    "choose",
    "exact_top_k",
    "measure",
]

K = 10  # recall@K: the depth a RAG search asks for
# The ladder's foot is 20, not 16: there the curve is steepest, so the sample's small bias in a query's
# difficulty costs the most recall (10k vectors: 0.981 sampled at 16, 0.969 held out), and all 16 would save
# is a few microseconds. Its rungs are close at the foot (20, 24): 24 was 0.011-0.014 above a target that 20
# met at 10k (docs/benchmarks.md).
LADDER = (20, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
SAMPLE = 1_000  # queries per measurement: two samples of 500 differed by 0.013 in recall at one breadth (100k)
MAX_SAMPLE = 2_000
NOISE = 0.5  # a query's distance from its stored vector, as a share of that vector's nearest-neighbour distance
ACCURACY = 0.01  # how far this curve strayed from held-out queries' (docs/benchmarks.md): finer is not paid for
CALIBRATION_EF = 256  # the breadth that finds each sampled vector's nearest neighbour (scales the noise)
BATCH = 8_192  # stored vectors per step of the exact search
WARM_UP = 20  # searches before the first timed one (caches, lazily built state)


@dataclass(frozen=True)
class CurvePoint:
    ef: int
    recall: float  # recall@K of the sampled queries at this breadth
    stderr: float  # the standard error of that mean (per-query recalls vary: most 1.0, a few far lower)
    p50_us: float  # median latency of one search at this breadth

    def meets(self, target: float) -> bool:
        """The target is reached, or within one standard error: the sample cannot tell them apart."""
        return self.recall + self.stderr >= target


@dataclass(frozen=True)
class Measurement:
    """One collection's measurement. `mode` "exact" or "fixed": nothing measured (`curve` empty, `ef` None)."""

    mode: SearchMode
    vectors: int
    target: float
    sample: int = 0
    curve: list[CurvePoint] = field(default_factory=list)
    ef: int | None = None  # the breadth chosen
    recall: float | None = None  # its recall on the sample
    met: bool = False  # the chosen breadth meets the target (False: the best the ladder reached)
    seconds: float = 0.0


def measure(
    index: VectorIndex,
    collection_id: int,
    target: float,
    *,
    sample: int = SAMPLE,
    ladder: tuple[int, ...] = LADDER,
    seed: int = 0,
    depth: int = K,
    should_stop: Callable[[], bool] = lambda: False,
) -> Measurement:
    """The recall curve of a collection over `ladder` and the smallest breadth that meets `target` (module doc).
    `depth`: the candidates a search of K asks the index for (more than K where they are re-ranked).

    Raises Unavailable when `should_stop` answers True or the collection stops being a graph meanwhile (dropped,
    or the index closed); whatever the backend raises otherwise.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target recall must be in (0, 1], got {target}")
    if depth < K:
        raise ValueError(f"a search asks for at least {K} candidates, got depth {depth}")
    sample = max(1, min(sample, MAX_SAMPLE))
    mode = index.search_mode(collection_id)
    vectors = index.count(collection_id)
    if mode != "graph":
        return Measurement(mode=mode, vectors=vectors, target=target)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    ids, base = _sample(index, collection_id, vectors, sample, rng)
    _check(should_stop)
    queries = _queries(index, collection_id, ids, base, rng)
    truth = exact_top_k(index, collection_id, queries, K, should_stop=should_stop)
    for q in queries[:WARM_UP]:
        index.search_at(collection_id, q, K, ladder[0])
    curve: list[CurvePoint] = []
    for ef in sorted(ladder):
        _check(should_stop)
        curve.append(_point(index, collection_id, queries, truth, ef, depth))
        if curve[-1].meets(target):
            break
    if index.search_mode(collection_id) != "graph":
        raise Unavailable(f"vector collection {collection_id} changed while it was measured (dropped or closed)")
    chosen, met = choose(curve, target)
    return Measurement(
        mode="graph",
        vectors=vectors,
        target=target,
        sample=len(queries),
        curve=curve,
        ef=chosen.ef,
        recall=chosen.recall,
        met=met,
        seconds=time.perf_counter() - started,
    )


def choose(curve: Sequence[CurvePoint], target: float) -> tuple[CurvePoint, bool]:
    """The breadth a curve (in breadth order) gives for `target`, and whether it meets it: the first that meets
    it; if none does, the graph itself tops out below it, and the smallest within ACCURACY of the best."""
    for point in curve:
        if point.meets(target):
            return point, True
    best = max(p.recall for p in curve)
    return next(p for p in curve if p.recall >= best - ACCURACY), False


def _check(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise Unavailable("the measurement was stopped: the store is closing")


def _sample(
    index: VectorIndex, collection_id: int, vectors: int, sample: int, rng: np.random.Generator
) -> tuple[Ids, Vectors]:
    """`sample` stored vectors at random positions of the id listing (one pass over the ids, no list of them
    kept), with their vectors, normalised."""
    positions = np.sort(rng.choice(vectors, size=min(sample, vectors), replace=False))
    picked: list[Ids] = []
    seen = 0
    for batch in index.iter_ids(collection_id, batch_size=BATCH):
        lo, hi = np.searchsorted(positions, [seen, seen + len(batch)])
        picked.append(batch[positions[lo:hi] - seen])
        seen += len(batch)
    wanted = np.concatenate(picked) if picked else np.empty(0, np.int64)
    found, matrix = index.get(collection_id, wanted)
    if not len(found):
        raise Unavailable(f"vector collection {collection_id} holds no vectors to measure")
    return found, _normalised(matrix)


def _queries(index: VectorIndex, collection_id: int, ids: Ids, base: Vectors, rng: np.random.Generator) -> Vectors:
    """Each sampled vector moved NOISE of its nearest-neighbour distance in a random orthogonal direction."""
    distances = np.empty(len(ids), dtype=np.float32)
    for i, (own, vector) in enumerate(zip(ids.tolist(), base, strict=True)):
        hits = index.search_at(collection_id, vector, 2, CALIBRATION_EF)
        similarity = next((h.score for h in hits if h.id != own), 1.0 - 1e-4)  # alone: a tiny step
        distances[i] = np.sqrt(max(2.0 - 2.0 * float(similarity), 1e-8))
    direction = rng.standard_normal(base.shape).astype(np.float32)
    direction -= np.sum(direction * base, axis=1, keepdims=True) * base
    direction = _normalised(direction)
    return _normalised(base + (NOISE * distances)[:, None] * direction)


def exact_top_k(
    index: VectorIndex,
    collection_id: int,
    queries: Vectors,
    k: int,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> Ids:
    """The ids of each query's k most similar stored vectors (cosine), by brute force over the collection in
    batches of BATCH vectors; -1 pads a row when the collection holds fewer than k."""
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for batch in index.iter_ids(collection_id, batch_size=BATCH):
        _check(should_stop)
        ids, matrix = index.get(collection_id, batch)
        if not len(ids):
            continue
        scores = queries @ _normalised(matrix).T
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        top = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, top, axis=1)
        best_ids = np.take_along_axis(all_ids, top, axis=1)
    return best_ids


def _point(index: VectorIndex, collection_id: int, queries: Vectors, truth: Ids, ef: int, depth: int) -> CurvePoint:
    recalls = np.ones(len(queries), dtype=np.float64)
    times = np.empty(len(queries), dtype=np.float64)
    for i, q in enumerate(queries):
        started = time.perf_counter()
        hits = index.search_at(collection_id, q, depth, ef)
        times[i] = time.perf_counter() - started
        true = {int(t) for t in truth[i] if t >= 0}
        if true:
            recalls[i] = len(true & {h.id for h in hits}) / len(true)
    stderr = float(np.std(recalls, ddof=1) / np.sqrt(len(recalls))) if len(recalls) > 1 else 0.0
    return CurvePoint(ef, round(float(recalls.mean()), 4), round(stderr, 4), round(float(np.median(times)) * 1e6, 1))


def _normalised(vectors: Vectors) -> Vectors:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (matrix / norms).astype(np.float32, copy=False)
    return out
