"""A query cut to what one search may cost to read: the model embeds tokens one by one (the local e5 model
took 12.7 s for 10,000 characters, and queries waiting behind it waited as long), so a long query is cut to
RAGSTORE_QUERY_MAX_TOKENS (never more than the model reads) before it is embedded or analysed, and the
response says so.

Tokens are the chunker's estimate (text/chunking.py), which needs no model and reads no further than the
cut. The estimate counts a run of letters as one token, which a real subword tokenizer splits; so the cut
is also at most CHARS_PER_TOKEN characters a token, which bounds the cost of a query of one endless word.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragstore.text.chunking import token_prefix

__all__ = ["CHARS_PER_TOKEN", "QueryCut", "cut_query"]

CHARS_PER_TOKEN = 4
# A word boundary this close to the cut is preferred to cutting a word in two.
_BOUNDARY_WINDOW = 32


@dataclass(frozen=True, slots=True)
class QueryCut:
    """The text a search reads, and whether that is less than the query it was given."""

    text: str
    truncated: bool


def cut_query(query: str, max_tokens: int) -> QueryCut:
    if len(query) <= max_tokens:  # every estimated token is at least one character: nothing to cut
        return QueryCut(query, False)
    end = min(token_prefix(query, max_tokens), max_tokens * CHARS_PER_TOKEN)
    if end >= len(query):
        return QueryCut(query, False)
    space = query.rfind(" ", max(0, end - _BOUNDARY_WINDOW), end + 1)
    if space > 0:
        end = space
    return QueryCut(query[:end].rstrip(), True)
