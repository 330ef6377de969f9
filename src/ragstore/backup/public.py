"""What an HTTP client may see of the server's filesystem: nothing absolute, no free-space figures.

The CLI runs on the server for its operator, so `ragstore dr report` and CLI errors name real paths. The
HTTP API answers whoever reaches it, so its backup answers and error bodies name the places by what they
are (`<data dir>`, `<backup repository>`) instead; an absolute path that is none of them is cut to its
last component.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ragstore.config import Settings
from ragstore.errors import RagstoreError

__all__ = ["hide_paths", "hide_paths_in_error"]

_ABSOLUTE = re.compile(r"(?<![\w.:/<>])/(?:[^\s'\",;:()]+/)*([^\s'\",;:()/]*)")


def _labels(settings: Settings) -> list[tuple[str, str]]:
    places = [
        (settings.backup_location.removeprefix("file://"), "<backup repository>"),
        (
            str(settings.restore_root_dir),
            "<RAGSTORE_RESTORE_ROOT>" if settings.restore_root is not None else "<data dir>/restores",
        ),
        (str(settings.backup_staging), "<staging>"),
        (str(settings.data_dir), "<data dir>"),
    ]
    pairs: list[tuple[str, str]] = []
    for raw, label in places:
        for form in {raw, str(Path(raw).expanduser().resolve())}:
            if form and form != ".":
                pairs.append((form.rstrip("/"), label))
    return sorted(pairs, key=lambda p: -len(p[0]))  # the longest first: the repository inside the data dir


def hide_paths(text: str, settings: Settings) -> str:
    for raw, label in _labels(settings):
        text = text.replace(raw, label)
    return _ABSOLUTE.sub(lambda m: f"<server path>/{m.group(1)}" if m.group(1) else "<server path>", text)


def _hide(value: Any, settings: Settings) -> Any:
    if isinstance(value, str):
        return hide_paths(value, settings)
    if isinstance(value, list):
        return [_hide(v, settings) for v in value]
    if isinstance(value, dict):
        return {k: _hide(v, settings) for k, v in value.items()}
    return value


def hide_paths_in_error(exc: RagstoreError, settings: Settings) -> RagstoreError:
    """The same error (category, code), its message and details with server paths replaced by labels."""
    exc.message = hide_paths(exc.message, settings)
    exc.details = _hide(exc.details, settings)
    exc.args = (exc.message,)
    return exc
