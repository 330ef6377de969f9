"""Korean-aware analyzers: the terms a lexical index will store (issue #4)."""

from __future__ import annotations

import pytest

from ragstore.errors import ConfigError
from ragstore.text.analyzers import BigramAnalyzer, KiwiAnalyzer, create_analyzer, kiwi_available


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


def test_the_analyzer_is_chosen_by_name() -> None:
    assert create_analyzer("bigram").name == "bigram"
    assert create_analyzer("auto").name == ("kiwi" if kiwi_available() else "bigram")
    with pytest.raises(ConfigError, match="unknown analyzer"):
        create_analyzer("trigram")
