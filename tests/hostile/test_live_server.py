"""The hostile suite's own fixture: a served store that starts clean and answers a search."""

from __future__ import annotations

from live import LiveServer


def test_live_server_starts_clean(live_server: LiveServer) -> None:
    counts = live_server.row_counts()
    assert counts["collections"] == 1 and counts["documents"] == 3 and counts["document_chunks"] >= 3
    assert 0 < live_server.rss_bytes() < 4 * 1024**3
    live_server.assert_serves_search()
    live_server.check_clean()
