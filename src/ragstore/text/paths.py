"""Which files a list of paths, folders and globs names: the one rule the CLI and the facade share."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from ragstore.errors import InvalidInput
from ragstore.text.loaders import is_supported

__all__ = ["expand_paths"]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, files of supported types under folders, and glob matches, sorted, no repeats.

    A name that matches nothing is refused rather than skipped: a typo must not look like an empty folder.
    """
    found: list[Path] = []
    for raw in paths:
        raw_str = str(raw)
        matches = (
            [Path(m) for m in sorted(glob.glob(raw_str, recursive=True))]
            if glob.has_magic(raw_str)
            else [Path(raw_str)]
        )
        if not matches:
            raise InvalidInput(f"{raw_str}: no file matches")
        for path in matches:
            if path.is_dir():
                found.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_supported(p)))
            elif path.is_file():
                found.append(path)
            else:
                raise InvalidInput(f"{raw_str}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for p in found:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique
