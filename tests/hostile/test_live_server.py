"""The hostile suite's own fixture: a served store that starts clean and answers a search."""

from __future__ import annotations

import httpx

from live import COLLECTION, LiveServer, create_key


def test_live_server_starts_clean(live_server: LiveServer) -> None:
    counts = live_server.row_counts()
    assert counts["collections"] == 1 and counts["documents"] == 3 and counts["document_chunks"] >= 3
    assert 0 < live_server.rss_bytes() < 4 * 1024**3
    live_server.assert_serves_search()
    live_server.check_clean()


def test_the_live_server_requires_a_key(live_server: LiveServer) -> None:
    """It runs as shipped (RAGSTORE_AUTH=required): nothing but liveness answers without a valid key."""
    search = f"/v1/collections/{COLLECTION}/search"
    body = {"query": "backup", "k": 1}
    with httpx.Client(base_url=live_server.url, timeout=60) as anonymous:
        assert anonymous.get("/health").status_code == 200
        refused = anonymous.post(search, json=body)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        forged = {"X-API-Key": live_server.api_key[:-1] + "!"}
        assert anonymous.post(search, json=body, headers=forged).status_code == 401
        reader = {"Authorization": f"Bearer {create_key(live_server, 'read', COLLECTION)}"}
        answer = anonymous.post(search, json=body, headers={**reader, "X-Request-ID": "live-1"})
        assert answer.status_code == 200 and answer.headers["x-request-id"] == "live-1"
        assert anonymous.delete(f"/v1/collections/{COLLECTION}", headers=reader).status_code == 403
        assert anonymous.get("/v1/keys", headers=reader).status_code == 403
    assert live_server.api_key not in live_server.log_text()
