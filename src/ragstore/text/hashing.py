"""Content hashes: the identity of a document or chunk, independent of where it came from."""

from __future__ import annotations

import hashlib
import unicodedata

__all__ = ["content_hash", "normalize_text"]


def normalize_text(text: str) -> str:
    """NFC-normalise and unify line endings, so the same text typed on two systems hashes the same.

    NFC matters for Korean: a syllable can arrive precomposed or as conjoining jamo.
    """
    text = unicodedata.normalize("NFC", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def content_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()
