"""Analyzers: text to the terms a lexical index stores and a lexical query looks up (issue #4).

Korean is written in space-separated *eojeol* that glue particles and endings onto the word: "환불은",
"환불을", "환불이" are one word to a reader and three to a whitespace tokenizer, and a trigram tokenizer
cannot match a two-syllable word at all. Two analyzers, chosen by name:

- `kiwi`: kiwipiepy's morphological analysis (the `ragstore[korean]` extra). Content morphemes only
  (nouns, verb and adjective stems, roots, foreign words, numbers), so particles and endings fall away.
  The model loads once per process (about 1.3 s) and texts are analysed in batches.
- `bigram`: no dependency. Every run of Hangul becomes its overlapping two-syllable pieces (a one-syllable
  run stays whole), every other run of letters or digits stays whole; "환불은" gives "환불", "불은", which meets the
  query "환불". The default when kiwi is not installed.

Both lower-case and NFKC-normalise, so English and mixed text work with either. `name` and `version` are
recorded with an index: terms from another analyzer or version must never be mixed in, so a change is a
re-index.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ragstore.errors import ConfigError

__all__ = ["ANALYZERS", "Analyzer", "BigramAnalyzer", "KiwiAnalyzer", "create_analyzer", "kiwi_available"]

_TOKENS = re.compile(r"[\uac00-\ud7a3]+|[^\W_\uac00-\ud7a3]+", re.UNICODE)
_HANGUL = re.compile(r"[\uac00-\ud7a3]+")


@runtime_checkable
class Analyzer(Protocol):
    name: str
    version: str

    def terms(self, text: str) -> list[str]:
        """The terms of one text, in order, repeats kept (a lexical index counts them)."""

    def terms_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """`terms` of many texts at once (one model call for kiwi)."""


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


class BigramAnalyzer:
    name = "bigram"
    version = "1"

    def terms(self, text: str) -> list[str]:
        out: list[str] = []
        for token in _TOKENS.findall(_normalise(text)):
            if _HANGUL.fullmatch(token) and len(token) > 1:
                out.extend(token[i : i + 2] for i in range(len(token) - 1))
            else:
                out.append(token)
        return out

    def terms_batch(self, texts: Sequence[str]) -> list[list[str]]:
        return [self.terms(text) for text in texts]


# Content morphemes: common and proper nouns, verb and adjective stems, roots, foreign words, hanja, numbers.
KIWI_CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "VV", "VA", "XR", "SL", "SH", "SN", "MAG"})


def kiwi_available() -> bool:
    try:
        import kiwipiepy  # noqa: F401
    except ImportError:
        return False
    return True


class KiwiAnalyzer:
    name = "kiwi"

    def __init__(self) -> None:
        try:
            import kiwipiepy
        except ImportError as exc:
            raise ConfigError("the kiwi analyzer needs kiwipiepy: pip install 'ragstore[korean]'") from exc
        self.version = f"kiwipiepy-{kiwipiepy.__version__}"
        self._kiwi: Any = None
        self._lock = threading.Lock()  # kiwipiepy is not documented as thread-safe; one call at a time

    def _model(self) -> Any:
        if self._kiwi is None:
            from kiwipiepy import Kiwi

            self._kiwi = Kiwi()
        return self._kiwi

    @staticmethod
    def _content(tokens: Any) -> list[str]:
        return [_normalise(t.form) for t in tokens if t.tag.split("-")[0] in KIWI_CONTENT_TAGS]

    def terms(self, text: str) -> list[str]:
        return self.terms_batch([text])[0]

    def terms_batch(self, texts: Sequence[str]) -> list[list[str]]:
        if not texts:
            return []
        with self._lock:
            results = list(self._model().tokenize(list(texts)))
        return [self._content(tokens) for tokens in results]


ANALYZERS = ("auto", "kiwi", "bigram")


def create_analyzer(name: str = "auto") -> Analyzer:
    """`auto` is kiwi when installed, else bigram; naming kiwi without kiwipiepy is a configuration error."""
    if name == "bigram" or (name == "auto" and not kiwi_available()):
        return BigramAnalyzer()
    if name in ("kiwi", "auto"):
        return KiwiAnalyzer()
    raise ConfigError(f"unknown analyzer {name!r}; choose one of {', '.join(ANALYZERS)}")
