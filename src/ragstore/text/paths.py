"""Which files a list of paths, folders and globs names: the one rule the CLI and the facade share."""

from __future__ import annotations

import fnmatch
import glob
from collections.abc import Iterable
from pathlib import Path

from ragstore.errors import InvalidInput
from ragstore.text.loaders import is_supported

__all__ = ["expand_paths", "in_scope", "resolve_root", "scope_for", "source_for"]


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


def resolve_root(root: str | Path | None) -> Path | None:
    """The declared root, resolved; refused unless it is an existing folder (a typo must not re-key a tree)."""
    if root is None:
        return None
    resolved = Path(root).expanduser().resolve()
    if not resolved.is_dir():
        raise InvalidInput(f"--root {root}: no such folder")
    return resolved


def source_for(path: Path, root: Path | None = None) -> str:
    """A file's source URI: one name per file however it was typed.

    Without a root, the resolved absolute path (symlinks followed, `..` gone); with one, the path relative
    to that (resolved) root, in POSIX form, so a tree moved or mounted elsewhere keeps its documents.
    """
    resolved = path.resolve()
    if root is None:
        return str(resolved)
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        raise InvalidInput(f"{path}: is outside the root {root}") from None


def scope_for(raw: str | Path, root: Path | None = None) -> str:
    """What a PATH argument of a sync covers, in source-URI form: a folder's sources end in `/` (a prefix),
    a file's is its own source, a glob's is a pattern (fnmatch) over its resolved leading folder. With a root,
    the same relative to the root, as those sources are stored (`""`: the root itself, every relative source):
    a sync never reaches past the paths it was given."""
    raw_str = str(raw)
    if glob.has_magic(raw_str):
        parts = Path(raw_str).parts
        fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
        base = Path(*parts[:fixed]).resolve() if fixed else Path.cwd().resolve()
        scope = str(base.joinpath(*parts[fixed:]))
    else:
        path = Path(raw_str).resolve()
        scope = str(path) + "/" if path.is_dir() else str(path)
    if root is None:
        return scope
    prefix = str(root).rstrip("/") + "/"
    return scope.removeprefix(prefix) if scope.startswith(prefix) else scope


def in_scope(source: str, scope: str, root: Path | None = None) -> bool:
    """Whether a stored source (of a file: `path` or `path#n` for a record of a JSON file) lies in a scope."""
    if root is not None:
        if source.startswith("/") or "://" in source or source.startswith(("text:", "../")):
            return False
        if scope == "":
            return True
    if glob.has_magic(scope):
        return fnmatch.fnmatchcase(source, scope) or fnmatch.fnmatchcase(source.rpartition("#")[0], scope)
    if scope.endswith("/"):
        return source.startswith(scope)
    return source == scope or source.startswith(scope + "#")
