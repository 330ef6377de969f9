"""Where a restore may write, and which names a backup may carry: checked before a single byte is written.

A restore writes a decrypted copy of the whole store, so where it goes is a security decision. The HTTP API
may restore only below the restore root (RAGSTORE_RESTORE_ROOT, default `<data dir>/restores`); the CLI is
the operator's tool and may name any folder. Both get the same safety: the target is a new or empty folder,
no component of its path is a symlink (so a link planted anywhere on the way cannot redirect the write), it
is never the live data directory, its index, the backup repository or the staging area, its folders are
made 0700 and its files 0600, and a failed restore removes only what it made itself.

A manifest names the files it restores by relative paths; an unencrypted repository can be edited by
anyone who can write to it (checksums are recomputed as easily as they are checked), so every path, map
name and block name is checked to be one ragstore writes before it is used.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ragstore.backup.errors import BackupDamaged, NoSpace
from ragstore.errors import InvalidInput

__all__ = [
    "MAX_PATH_BYTES",
    "RestoreTarget",
    "check_backup_id",
    "check_block_digest",
    "check_manifest_names",
    "prepare_target",
    "remove_tree",
]

BACKUP_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")  # `manager.new_backup_id` makes `<time>-<kind>-<hex>`
BLOCK_DIGEST = re.compile(r"[0-9a-f]{64}")
MAP_NAME = re.compile(r"maps/([0-9A-Za-z][0-9A-Za-z_-]{0,63})/[0-9]{1,9}")
TOP_LEVEL = {"ragstore.db", "database.pgdump", "index"}  # what a backup restores (manifest.FileEntry.path)
NAME_MAX = 255  # bytes in one path component (Linux, most filesystems)
# PATH_MAX is 4,096; a restore writes `.restore-<id>/index/<file>` below the target, so leave room for it.
MAX_PATH_BYTES = 3_800


def check_backup_id(backup_id: str) -> str:
    """A backup id names a repository object: only the characters ragstore's own ids use, so none escapes."""
    if not isinstance(backup_id, str) or not BACKUP_ID.fullmatch(backup_id):
        raise InvalidInput(
            f"backup_id {backup_id[:80]!r} is not a backup id (letters, digits, '-' and '_', at most 64): "
            "see `backup list`"
        )
    return backup_id


def check_block_digest(digest: str, *, where: str) -> str:
    if not BLOCK_DIGEST.fullmatch(digest):
        raise BackupDamaged(f"{where}: names a block {digest[:80]!r} that is not a block name (altered)")
    return digest


def check_manifest_names(files: list[tuple[str, str, list[str]]], *, backup_id: str) -> None:
    """Every (path, map, blocks) of a manifest is a name ragstore writes: relative, inside the restored folder,
    one of the files a store has; refused before anything is written."""
    where = f"backup {backup_id}"
    seen: set[PurePosixPath] = set()
    for path, map_name, blocks in files:
        rel = _entry_path(path, where=where)
        for earlier in seen:
            if rel == earlier or earlier in rel.parents or rel in earlier.parents:
                raise BackupDamaged(f"{where}: its manifest names {path!r} twice or inside another file (altered)")
        seen.add(rel)
        if not MAP_NAME.fullmatch(map_name):
            raise BackupDamaged(f"{where}: its manifest names a map {map_name[:80]!r} outside maps/ (altered)")
        for digest in blocks:
            check_block_digest(digest, where=where)


def _entry_path(path: str, *, where: str) -> PurePosixPath:
    bad = (
        not path
        or len(path) > 1024
        or "\x00" in path
        or "\\" in path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in path.split("/"))
    )
    rel = PurePosixPath(path)
    if bad or rel.parts[0] not in TOP_LEVEL or (rel.parts[0] != "index" and len(rel.parts) > 1):
        raise BackupDamaged(
            f"{where}: its manifest names a file {path[:80]!r} outside the restored folder (altered); "
            "nothing was written"
        )
    return rel


@dataclass
class RestoreTarget:
    """A folder a restore may write into, and what the restore made to reach it (removed if it fails)."""

    path: Path
    label: str  # how messages name it: relative to the restore root for the API, the path for the CLI
    created: list[Path] = field(default_factory=list)  # folders this restore made, outermost first

    def discard(self) -> None:
        """Undo a failed restore: the target was new or empty, so everything in it is the restore's own."""
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self.path)
            if stat.S_ISDIR(st.st_mode):
                for entry in os.scandir(self.path):
                    remove_tree(Path(entry.path))
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never something this restore did not make

    def seal(self) -> None:
        """Folders 0700 and files 0600: a restored store is a decrypted copy of every document."""
        os.chmod(self.path, 0o700)
        for root, dirs, files in os.walk(self.path):  # os.walk does not follow symlinks by default
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
            for name in files:
                full = os.path.join(root, name)
                if not os.path.islink(full):
                    with contextlib.suppress(OSError):
                        os.chmod(full, 0o600)


def remove_tree(path: Path) -> None:
    """Remove a file or folder without ever following a symlink: a link is removed, not what it points at."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)  # fd-based on Linux (rmtree.avoids_symlink_attacks): links inside are unlinked
    else:
        path.unlink()


def prepare_target(
    to: str, *, root: Path | None, live: Path, forbidden: list[Path], root_label: str = "<restore root>"
) -> RestoreTarget:
    """Check and create the folder `to` names. With `root` (the API), `to` must lie below it and a relative
    `to` is taken from it; without (the CLI), from the working directory.

    `live` (the data directory) and every folder in `forbidden` (the index, the repository, the staging area)
    and below it are refused; `root_label` is how messages name the root (never by its path).

    Raises InvalidInput naming the problem (NUL, too long, outside the root, through a symlink, a file, not
    empty, the live store, unwritable); nothing is left behind when it does.
    """
    if "\x00" in to:
        raise InvalidInput("to: the path contains a NUL character")
    if not to.strip():
        raise InvalidInput("to: the path is empty")
    raw = Path(to) if root is not None else Path(to).expanduser()
    if root is not None:
        root = Path(os.path.abspath(root.resolve()))
        if ".." in raw.parts:
            raise InvalidInput(f"to: '..' is not allowed; name a folder below the restore root ({root_label})")
        raw = raw if raw.is_absolute() else root / raw
    path = Path(os.path.abspath(raw))  # lexical; sound because no component may be a symlink (checked below)
    encoded = os.fsencode(str(path))
    if len(encoded) > MAX_PATH_BYTES or any(len(os.fsencode(p)) > NAME_MAX for p in path.parts):
        raise InvalidInput(f"to: the path is too long (at most {MAX_PATH_BYTES} bytes, {NAME_MAX} per folder name)")
    if root is not None:
        if path == root or root not in path.parents:
            raise InvalidInput(
                f"to: restores through the API go only into a new folder below the restore root ({root_label})"
            )
        label = f"{root_label}/{path.relative_to(root)}"
    else:
        label = str(path)
    places = [Path(os.path.abspath(p)) for p in forbidden]
    if path == Path(os.path.abspath(live)) or any(path == p or p in path.parents for p in places):
        raise InvalidInput(
            f"to: {label} is the live store, its index, the backup repository or the staging area; name a new folder"
        )
    missing = _check_components(path, label)
    if not missing:
        if any(os.scandir(path)):
            raise InvalidInput(f"to: {label} is not empty; name a new or empty folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InvalidInput(f"to: {label} is not writable by the server")
    target = RestoreTarget(path, label)
    for folder in missing:
        try:
            os.mkdir(folder, 0o700)
        except OSError as exc:
            target.discard()
            raise _mkdir_error(exc, label) from None
        target.created.append(folder)
    os.chmod(path, 0o700)
    return target


def _check_components(path: Path, label: str) -> list[Path]:
    """Every existing component is a real folder (never a symlink); returns the ones to create, outermost first."""
    chain = [*reversed(path.parents), path]
    for i, part in enumerate(chain):
        try:
            st = os.lstat(part)
        except FileNotFoundError:
            return chain[i:]
        except OSError as exc:
            raise InvalidInput(f"to: {label} cannot be reached ({os.strerror(exc.errno or 0)})") from None
        if stat.S_ISLNK(st.st_mode):
            raise InvalidInput(f"to: {label} passes through a symlink ({part.name or '/'}); name a real folder")
        if not stat.S_ISDIR(st.st_mode):
            what = "is a file" if part == path else f"has a file on its way ({part.name})"
            raise InvalidInput(f"to: {label} {what}, not a folder; name a new folder")
    return []


def _mkdir_error(exc: OSError, label: str) -> Exception:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InvalidInput(f"to: {label} cannot be created: not writable by the server")
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidInput(f"to: {label} cannot be created: the path is too long")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"to: {label} cannot be created: no space left")
    return InvalidInput(f"to: {label} cannot be created ({os.strerror(exc.errno or 0)})")
