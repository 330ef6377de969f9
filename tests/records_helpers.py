"""Sample bodies for every declared record type, and a way to make a record with its parents."""

from __future__ import annotations

from typing import Any

from ragstore.declarations.record_spec import RecordType
from ragstore.declarations.record_types import RECORD_TYPES, by_table
from ragstore.service import RagStore

# A valid create body for each writable type (parents' ids are added by `make`), and a change for its update.
SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "workflows": ({"name": "요약 워크플로", "definition": {"steps": ["search", "answer"]}}, {"active": False}),
    "workflow_executions": ({"status": "running", "inputs": {"q": "환불"}}, {"status": "succeeded"}),
    "guardrails": ({"name": "pii", "kind": "regex", "rules": {"deny": ["\\d{6}-\\d{7}"]}}, {"enabled": False}),
    "mcp_connections": (
        {"name": "search-mcp", "transport": "streamable-http", "endpoint": "https://mcp.example/x"},
        {"endpoint": "https://mcp.example/y"},
    ),
    "flows": ({"name": "rag-flow", "definition": {"nodes": [], "edges": []}}, {"description": "v2"}),
    "repositories": ({"name": "ragstore", "url": "https://git.example/ragstore"}, {"description": "code"}),
    "analysis_requests": ({"what": "dependency audit"}, {"status": "done"}),
    "analysis_results": ({"result": {"issues": 3}}, {"result": {"issues": 2}}),
    "rag_analysis_results": ({"result": {"answer": "ok"}, "chunk_ids": [1, 2]}, {"document_ids": [7]}),
    "ai_request_stats": ({"model": "gpt-x", "kind": "llm", "prompt_tokens": 10}, {"outcome": "error"}),
    "cache_metadata": ({"layer": "search", "hits": 3, "misses": 1}, {"hits": 4}),
}
WRITABLE = [spec for spec in RECORD_TYPES if spec.writable]


def make(store: RagStore, table: str, suffix: str = "", **overrides: Any) -> Any:
    """A record of `table` with its parents made first; unique names get `suffix`."""
    spec = by_table(table)
    assert spec is not None
    body = dict(SAMPLES[table][0])
    for f in spec.fields:
        if f.unique and f.name in body:
            body[f.name] = f"{body[f.name]}{suffix}"
    if spec.parent is not None and spec.parent.field not in overrides:
        body[spec.parent.field] = make(store, spec.parent.table, suffix).id
    body.update(overrides)
    return store.records.create(table, body)


def spec_of(table: str) -> RecordType:
    spec = by_table(table)
    assert spec is not None
    return spec
