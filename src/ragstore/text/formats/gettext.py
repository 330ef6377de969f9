"""Gettext message catalogues (.po, .pot): each message as its original and translation, one per paragraph.

The catalogue's header (the entry with the empty msgid) names the project and the charset; the title is
its Project-Id-Version, else the first real message, never `msgid ""`. The declared charset decodes the
file when it is not UTF-8 (Korean catalogues are often EUC-KR).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from ragstore.errors import InvalidInput
from ragstore.text.document import LoadedDocument
from ragstore.text.encodings import decode_text
from ragstore.text.limits import LoadBudget
from ragstore.text.titles import short_title, structural_title

__all__ = ["load_po", "parse_po"]

_KEYWORD = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(\".*\")\s*$")
_CONTINUATION = re.compile(r"^(\".*\")\s*$")
_HEADER_CHARSET = re.compile(rb"charset=([A-Za-z0-9._-]+)")
_PLACEHOLDER_PROJECTS = {"", "PACKAGE VERSION", "PACKAGE"}


@dataclass
class Message:
    msgid: str = ""
    msgid_plural: str = ""
    msgctxt: str | None = None
    msgstr: list[str] = field(default_factory=list)


def _string(literal: str, name: str, lineno: int) -> str:
    """A PO string literal: C escapes (\\n, \\t, \\", \\\\), read without evaluating anything."""
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError) as exc:
        raise InvalidInput(f"{name}: line {lineno}: not a valid PO string {literal[:40]!r}") from exc
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: line {lineno}: not a valid PO string {literal[:40]!r}")
    return value


def parse_po(text: str, name: str, budget: LoadBudget) -> list[Message]:
    """The catalogue's entries in order (obsolete `#~` entries and comments skipped)."""
    messages: list[Message] = []
    current: Message | None = None
    field_name = ""
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if lineno % 4096 == 0:
            budget.check()
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword = _KEYWORD.match(line)
        if keyword:
            key, value = keyword.group(1), _string(keyword.group(2), name, lineno)
            if key == "msgctxt" or (key == "msgid" and (current is None or current.msgstr)):
                current = Message()
                messages.append(current)
            if current is None:  # msgstr before any msgid
                raise InvalidInput(f"{name}: line {lineno}: {key} before any msgid")
            field_name = key
            if key == "msgctxt":
                current.msgctxt = value
            elif key == "msgid":
                current.msgid = value
            elif key == "msgid_plural":
                current.msgid_plural = value
            else:
                current.msgstr.append(value)
            continue
        continuation = _CONTINUATION.match(line)
        if continuation and current is not None and field_name:
            value = _string(continuation.group(1), name, lineno)
            if field_name == "msgctxt":
                current.msgctxt = (current.msgctxt or "") + value
            elif field_name == "msgid":
                current.msgid += value
            elif field_name == "msgid_plural":
                current.msgid_plural += value
            else:
                current.msgstr[-1] += value
            continue
        raise InvalidInput(f"{name}: line {lineno} is not gettext catalogue syntax: {line[:60]!r}")
    return messages


def _header(messages: list[Message]) -> dict[str, str]:
    for message in messages:
        if message.msgid == "" and message.msgctxt is None and message.msgstr:
            fields = {}
            for line in message.msgstr[0].splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    fields[key.strip().lower()] = value.strip()
            return fields
    return {}


def load_po(data: bytes, name: str, mime: str, budget: LoadBudget, encoding: str | None) -> list[LoadedDocument]:
    charset = _HEADER_CHARSET.search(data[:8192])
    decoded = decode_text(data, name, encoding, declared=charset.group(1).decode("ascii") if charset else None)
    messages = parse_po(decoded.text, name, budget)
    entries = [m for m in messages if m.msgid]
    if not entries:
        raise InvalidInput(f"{name}: is a gettext catalogue with no messages")
    parts = []
    for message in entries:
        lines = [message.msgid]
        if message.msgid_plural:
            lines.append(message.msgid_plural)
        lines.extend(s for s in message.msgstr if s and s != message.msgid)
        parts.append("\n".join(line.strip() for line in lines if line.strip()))
    header = _header(messages)
    project = header.get("project-id-version", "")
    title = structural_title(project) if project not in _PLACEHOLDER_PROJECTS else ""
    title = title or short_title(entries[0].msgid) or Path(name).stem
    meta: dict[str, str | int] = {"messages": len(entries)}
    if header.get("language"):
        meta["language"] = header["language"]
    text = "\n\n".join(p for p in parts if p)
    return [LoadedDocument(name, title, mime, text, len(data), dict(meta), encoding=decoded.encoding)]
