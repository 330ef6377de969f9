"""Korean-aware analyzers: the terms a lexical index will store (issue #4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstore.errors import ConfigError
from ragstore.text.analyzers import BigramAnalyzer, KiwiAnalyzer, create_analyzer, kiwi_available

from conftest import in_fresh_store_process


def test_bigrams_let_a_two_syllable_query_meet_the_word_with_its_particle() -> None:
    analyzer = BigramAnalyzer()
    document = analyzer.terms("환불은 구매 후 7일 안에 요청할 수 있다.")
    assert document[:2] == ["환불", "불은"] and "7일" not in document
    assert set(analyzer.terms("환불")) <= set(document)
    assert set(analyzer.terms("요청")) <= set(document)


def test_bigrams_keep_other_words_whole_and_fold_case_and_width() -> None:
    assert BigramAnalyzer().terms("API Rate-Limit: 600회 ＡＢＣ") == ["api", "rate", "limit", "600", "회", "abc"]
    assert BigramAnalyzer().terms("") == []


needs_kiwi = pytest.mark.skipif(not kiwi_available(), reason="kiwipiepy (the ragstore[korean] extra) is not installed")


@needs_kiwi
def test_kiwi_keeps_content_morphemes_and_drops_particles_and_endings() -> None:
    analyzer = KiwiAnalyzer()
    terms = analyzer.terms("전세 계약 갱신 요구권은 임차인이 한 번 쓸 수 있어요. API rate limit은 분당 600회입니다.")
    assert {"전세", "계약", "갱신", "요구", "임차인", "api", "rate", "limit", "600"} <= set(terms)
    assert not {"은", "이", "어요", "ᆸ니다"} & set(terms)
    assert analyzer.version.startswith("kiwipiepy-")


@needs_kiwi
def test_kiwi_analyses_a_batch_like_one_text_at_a_time() -> None:
    analyzer = KiwiAnalyzer()
    texts = ["환불은 며칠 안에 되나요?", "김치를 담그는 법", "marathon training plan"]
    assert analyzer.terms_batch(texts) == [analyzer.terms(t) for t in texts]
    assert analyzer.terms_batch([]) == []


@needs_kiwi
def test_kiwi_reads_english_words_off_the_text_and_leaves_english_text_to_no_model() -> None:
    """kiwipiepy 0.24 split English words it did not know ("access." into "a" + "ccess.", glued by the old
    Latin+digits rule into "grantccess.") and kept a sentence's last period ("key."), so a question for "key"
    missed every passage where the word ends a sentence. Other scripts' words are now the text's own runs."""
    analyzer = KiwiAnalyzer()
    assert analyzer.terms("Rotate the key. Then grant access.") == ["rotate", "key", "grant", "access"]
    assert analyzer.terms("Use security.keys in permissions.py") == ["use", "security", "keys", "permissions", "py"]
    assert analyzer._kiwi is None  # no Korean or Chinese character: the model was never loaded
    mixed = analyzer.terms("API를 호출하면 E24 오류가 났다. ＡＰＩ привет café 漢字")
    assert mixed == ["api", "호출", "e24", "오류", "나", "api", "привет", "café", "漢字"]
    # A digit inside a morpheme kiwi keeps is that morpheme's, not a term of its own as well.
    assert analyzer.terms("서울 3호선 Rotate the key.") == ["서울", "3호선", "rotate", "key"]
    assert analyzer.terms_batch(["the key.", "열쇠 key."]) == [["key"], ["열쇠", "key"]]


def test_the_analyzer_is_chosen_by_name() -> None:
    assert create_analyzer("bigram").name == "bigram"
    assert create_analyzer("auto").name == ("kiwi" if kiwi_available() else "bigram")
    with pytest.raises(ConfigError, match="unknown analyzer"):
        create_analyzer("trigram")


@needs_kiwi
def test_a_warmed_store_has_loaded_kiwi_before_its_first_korean_search(tmp_path: Path) -> None:
    """The warm-up's text once held no Korean, which the analyzer reads without kiwi: the first Korean search of
    each server then paid kiwi's load and first analysis (about 3 s). A fresh process, so nothing loaded it."""
    lines = ["store.warm_up()", "print(store.components.lexical_indexer.target()._kiwi is not None)"]
    assert in_fresh_store_process(tmp_path, lines, RAGSTORE_LEXICAL_ANALYZER="kiwi").endswith("True")
