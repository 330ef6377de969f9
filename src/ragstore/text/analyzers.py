"""Analyzers: text to the terms a lexical index stores and a lexical query looks up (issue #4).

Korean is written in space-separated *eojeol* that glue particles and endings onto the word: "환불은",
"환불을", "환불이" are one word to a reader and three to a whitespace tokenizer, and a trigram tokenizer
cannot match a two-syllable word at all. Two analyzers, chosen by name:

- `kiwi`: kiwipiepy's morphological analysis (the `ragstore[korean]` extra) of the Korean and Chinese
  characters: content morphemes only (nouns, verb and adjective stems, roots, hanja), so particles and
  endings fall away. Words of other scripts (English, numbers) are read off the text itself, as the bigram
  analyzer reads them, and a text with no Korean or Chinese character is not given to kiwi at all. The model
  loads once per process (about 1.3 s) and texts are analysed in batches.
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

__all__ = [
    "ANALYZERS",
    "Analyzer",
    "BigramAnalyzer",
    "KiwiAnalyzer",
    "create_analyzer",
    "kiwi_available",
    "shared_analyzer",
]

_TOKENS = re.compile(r"[\uac00-\ud7a3]+|[^\W_\uac00-\ud7a3]+", re.UNICODE)
_HANGUL = re.compile(r"[\uac00-\ud7a3]+")
# What kiwi analyses: Hangul (syllables and jamo) and Han characters (hanja).
_KIWI_SCRIPTS = (
    "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\ud7b0-\ud7ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
)
_FOR_KIWI = re.compile(f"[{_KIWI_SCRIPTS}]")
# Every other run of letters and digits, in any script: one term, as the bigram analyzer keeps it.
_OTHER_WORDS = re.compile(f"[^\\W_{_KIWI_SCRIPTS}]+")


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


# English function words. Korean particles and endings never become terms (kiwi drops them by tag; the
# bigram analyzer cannot tell them apart), but English ones would: a question in English over a Korean
# collection then matches every English passage on "how", "do" and "the", and in hybrid search those
# matches outvote the dense side (measured on the sample corpus: cross-lingual hit@5 fell from 1.0 to 0.18).
_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
"""
ENGLISH_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def _keep(term: str) -> bool:
    return term not in ENGLISH_STOP_WORDS


class BigramAnalyzer:
    name = "bigram"
    version = "3"  # 2: English stop words dropped; 3: the document title analysed with every chunk

    def terms(self, text: str) -> list[str]:
        out: list[str] = []
        for token in _TOKENS.findall(_normalise(text)):
            if _HANGUL.fullmatch(token) and len(token) > 1:
                out.extend(token[i : i + 2] for i in range(len(token) - 1))
            elif _keep(token):
                out.append(token)
        return out

    def terms_batch(self, texts: Sequence[str]) -> list[list[str]]:
        return [self.terms(text) for text in texts]


# Content morphemes: common and proper nouns, numerals, verb and adjective stems, roots, hanja, adverbs. Not
# foreign words (SL) or numbers (SN): those are other scripts' words, read off the text (`_other_words`).
KIWI_CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "VV", "VA", "XR", "SH", "MAG"})


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
        # /2: English stop words dropped; /3: with the title; /4: compound pieces, Latin+digits joined;
        # /5: words of other scripts read off the text, not kiwi's tokens of them
        self.version = f"kiwipiepy-{kiwipiepy.__version__}/5"
        self._kiwi: Any = None
        self._lock = threading.Lock()  # kiwipiepy is not documented as thread-safe; one call at a time

    def _model(self) -> Any:
        if self._kiwi is None:
            from kiwipiepy import Kiwi

            self._kiwi = Kiwi()
        return self._kiwi

    @staticmethod
    def _content(tokens: Any) -> list[tuple[int, int, str]]:
        """Kiwi's content morphemes of Korean or Chinese characters, as (start, end, term) in the text.

        Kiwi may keep a compound noun whole in one sentence and split it in another ("국립중앙박물관은" in a
        question, "국립/중앙/박물관" in a passage), so a noun of three or more syllables also yields its
        two-syllable pieces, which both forms share. Its tokens of other scripts are left out: kiwipiepy
        0.24 splits English words it does not know ("access." into "a" and "ccess."), keeps a sentence's
        final period on its last word ("key."), and drops Cyrillic and full-width letters; `_other_words`
        reads those words off the text instead.
        """
        out: list[tuple[int, int, str]] = []
        for t in tokens:
            tag = t.tag.split("-")[0]
            if tag not in KIWI_CONTENT_TAGS or not _FOR_KIWI.search(t.form):
                continue
            form = _normalise(t.form)
            if not _keep(form):
                continue
            end = t.start + t.len
            out.append((t.start, end, form))
            if tag in ("NNG", "NNP") and len(form) >= 3 and _HANGUL.fullmatch(form):
                out.extend((t.start, end, form[i : i + 2]) for i in range(len(form) - 1))
        return out

    @staticmethod
    def _other_words(text: str, taken: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
        """The runs of letters and digits of other scripts, lower-cased and NFKC-normalised, as (start, end,
        term); a run inside a morpheme kiwi kept (the "3" of "3호선") is that morpheme's, not a word of its own."""
        out: list[tuple[int, int, str]] = []
        spans = iter(sorted((start, end) for start, end, _ in taken))
        span = next(spans, None)
        # Most texts are NFKC already: then a run needs lower-casing only (English chunks: 97 -> 69 us a chunk).
        normal = unicodedata.is_normalized("NFKC", text)
        for m in _OTHER_WORDS.finditer(text):
            while span is not None and span[1] <= m.start():
                span = next(spans, None)
            if span is not None and span[0] < m.end():
                continue
            run = m.group().lower() if normal else _normalise(m.group())
            # NFKC or lower-casing may split a run ("①②" is "12", "İ" gains a combining dot)
            for word in (run,) if run.isalnum() else _OTHER_WORDS.findall(run):
                if _keep(word):
                    out.append((m.start(), m.end(), word))
        return out

    def terms(self, text: str) -> list[str]:
        return self.terms_batch([text])[0]

    def terms_batch(self, texts: Sequence[str]) -> list[list[str]]:
        if not texts:
            return []
        korean = [i for i, text in enumerate(texts) if _FOR_KIWI.search(text)]
        analysed: dict[int, list[tuple[int, int, str]]] = {}
        if korean:
            with self._lock:
                results = self._model().tokenize([texts[i] for i in korean])
            analysed = {i: self._content(tokens) for i, tokens in zip(korean, results, strict=True)}
        out = []
        for i, text in enumerate(texts):
            kept = analysed.get(i)
            words = self._other_words(text, kept or [])
            if kept:
                words = sorted(kept + words, key=lambda term: term[0])  # stable: a noun's pieces stay after it
            out.append([term for _, _, term in words])
        return out


ANALYZERS = ("auto", "kiwi", "bigram")
_SHARED: dict[str, Analyzer] = {}
_SHARED_LOCK = threading.Lock()


def shared_analyzer(name: str = "auto") -> Analyzer:
    """`create_analyzer`, once per process: kiwi's model takes 1.3 s and ~100 MB to load, and every store
    the process opens can use the same one."""
    with _SHARED_LOCK:
        found = _SHARED.get(name)
        if found is None:
            found = create_analyzer(name)
            _SHARED[name] = found
        return found


def create_analyzer(name: str = "auto") -> Analyzer:
    """`auto` is kiwi when installed, else bigram; naming kiwi without kiwipiepy is a configuration error."""
    if name == "bigram" or (name == "auto" and not kiwi_available()):
        return BigramAnalyzer()
    if name in ("kiwi", "auto"):
        return KiwiAnalyzer()
    raise ConfigError(f"unknown analyzer {name!r}; choose one of {', '.join(ANALYZERS)}")
