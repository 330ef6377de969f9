"""`ragstore chat search`: full-text search over messages (registers on `ragstore chat`)."""

from __future__ import annotations
