"""Chunking: structure first (headings, paragraphs), then sentences, packed to a token budget with overlap.

Deterministic by construction (no randomness, no model calls), so the same file always yields the same
chunks and the same content hashes: re-ingesting it costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Chunk", "chunk_text", "count_tokens", "split_sentences", "token_prefix"]

# Approximates a multilingual subword tokenizer without loading one: Hangul in runs of two syllables,
# other letters/digits as whole words, punctuation as one token each.
_TOKEN = re.compile(r"[\uac00-\ud7a3]{1,2}|[^\W_\uac00-\ud7a3]+|[^\w\s]", re.UNICODE)
# Sentence ends: Western and CJK terminal punctuation (Korean "…다." / "…요?" end with these), then space.
_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f\u2026])[\"'\u201d\u2019)\]]*\s+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def token_prefix(text: str, max_tokens: int) -> int:
    """Where the first `max_tokens` (estimated) tokens of `text` end: reads no further than that."""
    end = 0
    for n, match in enumerate(_TOKEN.finditer(text), 1):
        end = match.end()
        if n == max_tokens:
            break
    else:
        return len(text)
    return end


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    token_count: int


@dataclass(frozen=True)
class _Segment:
    text: str
    tokens: int
    heading: bool
    starts_paragraph: bool


def split_sentences(paragraph: str) -> list[str]:
    sentences: list[str] = []
    for line in paragraph.split("\n"):
        line = line.strip()
        if line:
            sentences.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return sentences


def _hard_split(sentence: str, budget: int) -> list[str]:
    """Split a sentence longer than the budget at word boundaries (or inside a run with no spaces)."""
    pieces: list[str] = []
    current: list[str] = []
    current_tokens = 0
    for word in sentence.split():
        word_tokens = count_tokens(word)
        while word_tokens > budget:
            # A run with no spaces longer than the budget: cut it by tokens.
            tokens = _TOKEN.findall(word)
            head, word = "".join(tokens[:budget]), "".join(tokens[budget:])
            if current:
                pieces.append(" ".join(current))
                current, current_tokens = [], 0
            pieces.append(head)
            word_tokens = count_tokens(word)
        if current and current_tokens + word_tokens > budget:
            pieces.append(" ".join(current))
            current, current_tokens = [], 0
        if word:
            current.append(word)
            current_tokens += word_tokens
    if current:
        pieces.append(" ".join(current))
    return pieces


def _segments(text: str, budget: int) -> list[_Segment]:
    segments: list[_Segment] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [ln for ln in paragraph.split("\n") if ln.strip()]
        first = True
        body: list[str] = []
        for line in lines:
            if _HEADING.match(line):
                if body:
                    segments.extend(_sentence_segments("\n".join(body), budget, first))
                    first, body = False, []
                segments.append(_Segment(line.strip(), count_tokens(line), True, True))
                first = True
            else:
                body.append(line)
        if body:
            segments.extend(_sentence_segments("\n".join(body), budget, first))
    return segments


def _sentence_segments(paragraph: str, budget: int, starts_paragraph: bool) -> list[_Segment]:
    out: list[_Segment] = []
    for sentence in split_sentences(paragraph):
        for piece in _hard_split(sentence, budget) if count_tokens(sentence) > budget else [sentence]:
            out.append(_Segment(piece, count_tokens(piece), False, starts_paragraph and not out))
    return out


def _join(segments: list[_Segment]) -> str:
    parts: list[str] = []
    for i, seg in enumerate(segments):
        if i:
            parts.append("\n\n" if seg.starts_paragraph or seg.heading or segments[i - 1].heading else " ")
        parts.append(seg.text)
    return "".join(parts)


def chunk_text(
    text: str, *, max_tokens: int, overlap_tokens: int, checkpoint: Callable[[], None] | None = None
) -> list[Chunk]:
    """Chunks of at most `max_tokens` (estimated) tokens; a heading always opens a new chunk.

    `checkpoint` is called every 1,024 segments (a 10 MB text takes seconds), so a shutdown can stop it.

    Consecutive chunks inside one section share up to `overlap_tokens` of trailing sentences, so an answer
    that straddles a boundary is still found whole in one of them.
    """
    if overlap_tokens >= max_tokens:
        raise ValueError("overlap_tokens must be smaller than max_tokens")
    chunks: list[list[_Segment]] = []
    current: list[_Segment] = []
    current_tokens = 0
    has_body = False

    for n, seg in enumerate(_segments(text, max_tokens)):
        if checkpoint is not None and n % 1024 == 1023:
            checkpoint()
        if seg.heading and has_body:
            chunks.append(current)
            current, current_tokens, has_body = [], 0, False
        elif current and current_tokens + seg.tokens > max_tokens:
            chunks.append(current)
            carry: list[_Segment] = []
            carried = 0
            for prev in reversed(current):
                if prev.heading or carried + prev.tokens > overlap_tokens:
                    break
                carry.insert(0, prev)
                carried += prev.tokens
            if carried + seg.tokens > max_tokens:
                carry, carried = [], 0
            current, current_tokens = carry, carried
            has_body = bool(carry)
        current.append(seg)
        current_tokens += seg.tokens
        has_body = has_body or not seg.heading
    if current:
        chunks.append(current)
    result: list[Chunk] = []
    for segs in chunks:
        body = _join(segs).strip()
        if body:
            result.append(Chunk(len(result), body, count_tokens(body)))
    return result
