"""Which backups to keep: the newest in each of the last N hours, days, ISO weeks and months.

The rule is restic's and Borg's: walk the backups newest first; a backup is kept for a period kind when
it is the newest one in a period of that kind not yet represented, until N periods are. A backup kept by
any rule stays. The newest backup is always kept, whatever the numbers say.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Retention", "select_kept"]


@dataclass(frozen=True)
class Retention:
    hourly: int = 24
    daily: int = 7
    weekly: int = 4
    monthly: int = 6


PERIODS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
}


def select_kept(backups: Sequence[tuple[str, datetime]], policy: Retention) -> dict[str, list[str]]:
    """Backup id -> the rules that keep it (an id missing from the result is to be removed)."""
    newest_first = sorted(backups, key=lambda b: b[1], reverse=True)
    kept: dict[str, list[str]] = {}
    if newest_first:
        kept[newest_first[0][0]] = ["newest"]
    for rule, period_of in PERIODS.items():
        limit = getattr(policy, rule)
        seen: set[tuple[int, ...]] = set()
        for backup_id, when in newest_first:
            if len(seen) >= limit:
                break
            period = period_of(when)
            if period not in seen:
                seen.add(period)
                kept.setdefault(backup_id, []).append(rule)
    return kept
