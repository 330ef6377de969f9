"""Secrets never leave the process in clear: one function, `mask`, for every text ragstore shows.

Three kinds of secret reach output in practice. A password inside a URL (`postgresql://app:pw@db/x`, a
`REDIS_URL`, a proxy in `OPENAI_BASE_URL`) travels with the URL into error messages, `config show` and
logs; it is found by its shape, whatever URL carries it. A configured secret (an API key, a password
setting, a URL's password) can also turn up on its own, echoed by a library or a remote server; those are
registered when settings are built (`register`) and replaced wherever they appear as a whole token. And
an HTTP credential (`Bearer ...`, `Basic ...`) that a server or proxy echoes back is hidden by its shape.

Errors mask their message when they are made (`ragstore.errors`), the CLI masks each line it prints, and
`install_log_masking` masks every log record as it is created, so a handler added later (uvicorn's, a
test's caplog) sees only masked text.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "install_log_masking",
    "mask",
    "mask_record",
    "mask_url",
    "mask_value",
    "register",
    "url_password",
]

MASK = "***"

# `scheme://user:password@`: the password runs to the first `@` (SQLAlchemy's rule for URLs), so one with a
# `/` in it is still hidden; a host:port followed by an `@` later in a path is hidden too, which is the safe
# mistake to make.
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):(?P<password>[^\s@]*)@")
# An HTTP credential as a server or proxy may echo it back (`Authorization: Bearer sk-...`, `Basic <base64 of
# user:password>`): always a secret, whether or not ragstore knows the value.
# A credential is 8+ characters with a digit or a symbol in it, so prose ("Bearer authentication") is left alone.
_AUTH_CREDENTIALS = re.compile(r"\b(?P<scheme>Basic|Bearer)\s+(?=[^\s]*[0-9+/=._~\-])[A-Za-z0-9._~+/\-]{8,}=*")
# Shorter values would mask ordinary words; a URL's password of any length is still masked by its shape.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_known: frozenset[str] = frozenset()
_known_pattern: re.Pattern[str] | None = None


def register(*values: str | None) -> None:
    """Remember configured secret values, so `mask` hides them wherever they appear on their own."""
    global _known, _known_pattern
    fresh = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
    fresh |= {unquote(v) for v in fresh if len(unquote(v)) >= MIN_SECRET_LENGTH}
    with _lock:
        if fresh <= _known:
            return
        _known = _known | fresh
        # Longest first, so a secret that contains another is replaced whole; only as a whole token, so a
        # password that happens to be a common word does not garble the words that contain it.
        alternatives = "|".join(re.escape(v) for v in sorted(_known, key=len, reverse=True))
        _known_pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")


def url_password(url: str | None) -> str | None:
    """The password inside a URL, if it has one (for `register`)."""
    if not url or "://" not in url:
        return None
    found = _URL_CREDENTIALS.search(url)
    if found is not None and found.group("password"):
        return found.group("password")
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def mask(text: str) -> str:
    """`text` with every URL password and every registered secret replaced by `***`."""
    if not text:
        return text
    masked = _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    masked = _AUTH_CREDENTIALS.sub(lambda m: f"{m.group('scheme')} {MASK}", masked)
    pattern = _known_pattern
    if pattern is not None:
        masked = pattern.sub(MASK, masked)
    return masked


def mask_url(url: str | None) -> str | None:
    """A URL with its password hidden (`scheme://user:***@host/...`); None stays None."""
    return None if url is None else mask(url)


def mask_value(value: Any) -> Any:
    """Strings masked, inside lists and dicts too; anything else as it is (for error details, JSON output)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_value(v) for v in value)
    return value


def _mask_arg(arg: Any) -> Any:
    # Numbers keep their type (a `%d` must still format); anything else is replaced by its masked text only
    # when masking changes it, so a record's structure survives for formatters that read `args`.
    if isinstance(arg, int | float) or arg is None:
        return arg
    text = str(arg)
    masked = mask(text)
    return arg if masked == text else masked


def mask_record(record: logging.LogRecord) -> None:
    """Mask a log record in place: its message, its arguments, and its traceback's text."""
    if isinstance(record.msg, str):
        record.msg = mask(record.msg)
    elif record.msg is not None and mask(str(record.msg)) != str(record.msg):
        record.msg = mask(str(record.msg))
    if isinstance(record.args, tuple):
        record.args = tuple(_mask_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _mask_arg(v) for k, v in record.args.items()}
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = mask("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    if record.stack_info:
        record.stack_info = mask(record.stack_info)


_installed = False


def install_log_masking() -> None:
    """Mask every log record of this process when it is created (idempotent).

    A record factory rather than a filter: a filter sees only the records of the logger or handler it is
    attached to, and uvicorn, the worker and pytest each bring their own handlers.
    """
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            mask_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
