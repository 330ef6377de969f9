"""`ragstore dr report`: could this store be restored now, from what, and how long would it take?"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from ragstore.backup.manager import BackupManager
from ragstore.backup.public import hide_paths
from ragstore.errors import NotFound, RagstoreError
from ragstore.schemas import FreeSpace, NewestBackup, ReadinessReport, RestoreEstimate, VerifiedBackup

__all__ = ["DEFAULT_RESTORE_MB_S", "readiness_report"]

# Used until this store has restored or verified a backup of its own to time (MB/s of stored data).
DEFAULT_RESTORE_MB_S = 100.0
MAX_VERIFIED_AGE_H = 26.0


def readiness_report(manager: BackupManager, *, public: bool = False) -> ReadinessReport:
    """`public` (the HTTP API): no absolute server path and no free-space figure (`backup.public`)."""
    settings = manager.settings
    problems: list[str] = []
    warnings: list[str] = []
    key_set = bool(settings.backup_encryption_key and settings.backup_encryption_key.get_secret_value())
    try:
        repo = manager.repository(create=False)
        manifests = repo.manifests()
    except NotFound:
        repo, manifests = None, []
        problems.append("no backup has been made: run `ragstore backup create --kind full`")
    except RagstoreError as exc:
        repo, manifests = None, []
        problems.append(exc.message)
    encrypted = bool(repo and repo.encrypted)
    if repo is not None and not repo.encrypted:
        warnings.append("backups are not encrypted (set BACKUP_ENCRYPTION_KEY for new repositories)")
    newest = manifests[-1] if manifests else None
    now = datetime.now(UTC)
    newest_info: NewestBackup | None = None
    if newest is not None and repo is not None:
        missing = repo.missing_blocks(newest)
        newest_info = NewestBackup(
            id=newest.id,
            age_hours=round((now - datetime.fromisoformat(newest.created_at)).total_seconds() / 3600, 2),
            chain_complete=not missing,
            missing_blocks=len(missing),
        )
        if missing:
            problems.append(f"backup {newest.id} is missing {len(missing)} blocks: its chain is broken")
    verified = [(m, repo.verified(m.id)) for m in manifests] if repo is not None else []
    good = [(m, v) for m, v in verified if v and v.get("ok")]
    newest_verified: VerifiedBackup | None = None
    if good:
        m, v = good[-1]
        age_h = (now - datetime.fromisoformat(v["verified_at"])).total_seconds() / 3600
        newest_verified = VerifiedBackup(
            id=m.id,
            backup_age_hours=round((now - datetime.fromisoformat(m.created_at)).total_seconds() / 3600, 2),
            verified_hours_ago=round(age_h, 2),
            chain_complete=not repo.missing_blocks(m) if repo is not None else False,
        )
        if (now - datetime.fromisoformat(m.created_at)).total_seconds() / 3600 > MAX_VERIFIED_AGE_H:
            warnings.append(f"the newest verified backup ({m.id}) is older than {MAX_VERIFIED_AGE_H:.0f} hours")
    elif manifests:
        problems.append("no backup has been verified: run `ragstore backup verify`")
    failed = [m.id for m, v in verified if v and not v.get("ok")]
    if failed:
        problems.append(f"verification failed for {', '.join(failed[-3:])}")
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_free = shutil.disk_usage(data_dir).free
    repo_path = Path(settings.backup_location)
    repo_free = shutil.disk_usage(repo_path if repo_path.exists() else data_dir).free
    needed = newest.logical_bytes if newest else 0
    if needed and data_free < needed * 2:
        problems.append(
            "the data directory has too little free space for a restore beside the store"
            if public
            else f"the data directory has {data_free:,} bytes free; a restore beside the store needs {needed * 2:,}"
        )
    if repo_path.exists() and os.stat(repo_path).st_dev == os.stat(data_dir).st_dev:
        warnings.append("the repository is on the same filesystem as the data: a lost disk loses both")
    if public:
        problems = [hide_paths(p, settings) for p in problems]
        warnings = [hide_paths(w, settings) for w in warnings]
    return ReadinessReport(
        repository=hide_paths(settings.backup_location, settings) if public else settings.backup_location,
        key_present=key_set,
        encrypted=encrypted,
        backups=len(manifests),
        newest=newest_info,
        newest_verified=newest_verified,
        free_bytes=None if public else FreeSpace(data_dir=data_free, repository=repo_free, restore_needs=needed),
        estimated_restore_s=_estimate(manager, needed),
        problems=problems,
        warnings=warnings,
        status="failing" if problems else "warning" if warnings else "ready",
    )


def _estimate(manager: BackupManager, needed: int) -> RestoreEstimate:
    """From this store's own last timed restore or verify (bytes per second), else a default rate."""
    for run in manager.runs.history(200):
        if run.action in ("restore", "verify") and run.state == "complete" and run.duration_ms:
            size = run.size_bytes or (run.details or {}).get("bytes")
            if size:
                rate = size / (run.duration_ms / 1000)
                return RestoreEstimate(
                    seconds=round(needed / rate, 1), basis=f"{run.action} run {run.id}", bytes_per_s=round(rate)
                )
    rate = DEFAULT_RESTORE_MB_S * 1e6
    return RestoreEstimate(
        seconds=round(needed / rate, 1), basis=f"default {DEFAULT_RESTORE_MB_S:.0f} MB/s", bytes_per_s=round(rate)
    )
