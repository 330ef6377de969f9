"""consistency_reports: a finished check is `complete`, like every run of the run ledger (was `done`)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 07:40:00

Backups and consistency checks now share one run ledger (db/runs.py) with one set of states (`RunState`:
running, complete, failed, interrupted). Backups already wrote `complete`; the checks' finished rows move
from `done` to it, so the comparison with the previous run still finds the reports written before.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE consistency_reports SET state = 'complete' WHERE state = 'done'")


def downgrade() -> None:
    op.execute("UPDATE consistency_reports SET state = 'done' WHERE state = 'complete'")
