"""`ragstore chat purge`: remove soft-deleted and expired conversations for good (registers on `ragstore chat`)."""

from __future__ import annotations
