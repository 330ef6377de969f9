"""How a message's tokens are counted: with the embedder's own tokenizer where it offers one, else with the
estimate the chunker uses (Hangul in runs of two syllables, other words whole, punctuation one each).

The count is taken once, when a message is added, and stored in `messages.token_count`; context assembly
sums the stored counts, so changing the embedder later does not re-count old messages. The estimate is
within about 20 % of a multilingual subword tokenizer on English and Korean prose (it is the one every
chunk's `token_count` uses too), so a budget set with some margin holds.
"""

from __future__ import annotations

from collections.abc import Callable

from ragstore.text.chunking import count_tokens

__all__ = ["token_counter"]


def token_counter(embedder: object) -> Callable[[str], int]:
    """The embedder's `count_tokens(text) -> int` if it has one, else the chunker's estimate."""
    own = getattr(embedder, "count_tokens", None)
    if callable(own):
        return lambda text: int(own(text))
    return count_tokens
