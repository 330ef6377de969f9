"""The application records of a chat service, each declared once (declarations/record_spec.py says what a field means).

Table and column names follow the issue; `version` on every table is the optimistic-concurrency counter, so
a workflow's own definition number is `definition_version` and a flow version's number `flow_version`.
"""

from __future__ import annotations

from ragstore.declarations.record_spec import Field, Parent, RecordType
from ragstore.roles import Role

__all__ = ["EXECUTION_STATES", "MCP_TRANSPORTS", "RECORD_TYPES", "by_table"]

EXECUTION_STATES = ("pending", "running", "succeeded", "failed", "cancelled")
ANALYSIS_STATES = ("pending", "running", "done", "failed")
MCP_TRANSPORTS = ("stdio", "sse", "http", "streamable-http")
NAME = 200

WORKFLOWS = RecordType(
    "workflows",
    "workflow",
    (
        Field("name", "str", max_len=NAME, required=True, unique=True, filter=True, sort=True),
        Field("description", "text", max_len=4000, default=""),
        Field("definition", "json", default={}),
        Field("definition_version", "int", ge=1, le=2**31 - 1, default=1, filter=True, sort=True),
        Field("active", "bool", default=True, filter=True),
    ),
    description="A workflow's definition (JSON) and whether it is active.",
)

WORKFLOW_EXECUTIONS = RecordType(
    "workflow_executions",
    "workflow execution",
    (
        Field("status", "str", max_len=16, choices=EXECUTION_STATES, default="pending", filter=True, sort=True),
        Field("inputs", "json", default={}),
        Field("outputs", "json", default={}),
        Field("error", "text", max_len=16_000, nullable=True),
        Field("started_at", "datetime", nullable=True, filter=True, sort=True),
        Field("finished_at", "datetime", nullable=True, filter=True, sort=True),
        Field("duration_ms", "float", ge=0, le=1e12, nullable=True, filter=True, sort=True),
    ),
    parent=Parent("workflow_id", "workflows"),
    indexes=(("workflow_id", "status", "started_at"),),
    description="One run of a workflow: its status, inputs, outputs, error and timing.",
)

GUARDRAILS = RecordType(
    "guardrails",
    "guardrail",
    (
        Field("name", "str", max_len=NAME, required=True, unique=True, filter=True, sort=True),
        Field("kind", "str", max_len=64, required=True, filter=True, sort=True),
        Field("rules", "json", default={}),
        Field("applies_to", "json", default={}, description="{'workflows': [ids], 'collections': [names]}"),
        Field("enabled", "bool", default=True, filter=True),
    ),
    description="A rule set checked around a workflow or a collection's answers.",
)

MCP_CONNECTIONS = RecordType(
    "mcp_connections",
    "MCP connection",
    (
        Field("name", "str", max_len=NAME, required=True, unique=True, filter=True, sort=True),
        Field("transport", "str", max_len=16, choices=MCP_TRANSPORTS, required=True, filter=True),
        Field("endpoint", "str", max_len=2000, required=True),
        Field("credentials", "text", max_len=16_000, secret=True, description="Sealed in the vault, never read."),
        Field("last_successful_contact_at", "datetime", nullable=True, filter=True, sort=True),
    ),
    write_role=Role.ADMIN,  # the credentials open another service
    secret_scope="mcp",
    description="An MCP server connection; its credentials are encrypted under ENCRYPTION_KEY.",
)

FLOWS = RecordType(
    "flows",
    "flow",
    (
        Field("name", "str", max_len=NAME, required=True, unique=True, filter=True, sort=True),
        Field("description", "text", max_len=4000, default=""),
        Field("definition", "json", default={}, description="LangFlow-style flow JSON (nodes, edges)."),
        Field("flow_version", "int", ge=1, le=2**31 - 1, default=1, filter=True, sort=True, readonly=True),
    ),
    description="A flow; every change of its definition is kept in flow_versions.",
)

FLOW_VERSIONS = RecordType(
    "flow_versions",
    "flow version",
    (
        Field("flow_version", "int", ge=1, le=2**31 - 1, required=True, filter=True, sort=True),
        Field("definition", "json", default={}),
    ),
    parent=Parent("flow_id", "flows"),
    writable=False,
    indexes=(("flow_id", "flow_version"),),
    description="The past definitions of a flow (written by the store on each change; read-only).",
)

REPOSITORIES = RecordType(
    "repositories",
    "repository",
    (
        Field("name", "str", max_len=NAME, required=True, unique=True, filter=True, sort=True),
        Field("url", "str", max_len=2000, default=""),
        Field("description", "text", max_len=4000, default=""),
    ),
    description="Something analysed: a code or document repository.",
)

ANALYSIS_REQUESTS = RecordType(
    "analysis_requests",
    "analysis request",
    (
        Field("what", "text", max_len=4000, required=True),
        Field("status", "str", max_len=16, choices=ANALYSIS_STATES, default="pending", filter=True, sort=True),
    ),
    parent=Parent("repository_id", "repositories"),
    description="A request to analyse a repository, and where it stands.",
)

ANALYSIS_RESULTS = RecordType(
    "analysis_results",
    "analysis result",
    (Field("result", "json", default={}),),
    parent=Parent("request_id", "analysis_requests"),
    description="What an analysis found (JSON).",
)

RAG_ANALYSIS_RESULTS = RecordType(
    "rag_analysis_results",
    "RAG analysis result",
    (
        Field("result", "json", default={}),
        Field("chunk_ids", "json", default=[], description="The chunk ids the analysis used."),
        Field("document_ids", "json", default=[], description="The document ids the analysis used."),
    ),
    parent=Parent("request_id", "analysis_requests"),
    description="What a retrieval-augmented analysis found, and the chunks and documents it used.",
)

AI_REQUEST_STATS = RecordType(
    "ai_request_stats",
    "AI request",
    (
        Field("model", "str", max_len=NAME, required=True, filter=True, sort=True),
        Field("kind", "str", max_len=16, choices=("llm", "embedding"), required=True, filter=True),
        Field("prompt_tokens", "int", ge=0, le=2**31 - 1, default=0, sort=True),
        Field("completion_tokens", "int", ge=0, le=2**31 - 1, default=0, sort=True),
        Field("cost_usd", "float", ge=0, le=1e9, default=0.0, sort=True),
        Field("latency_ms", "float", ge=0, le=1e9, default=0.0, sort=True),
        Field("outcome", "str", max_len=32, default="ok", filter=True),
    ),
    indexes=(("model", "created_at"),),
    description="One LLM or embedding request a service made (embedding_usage rows are summarised with these).",
)

CACHE_METADATA = RecordType(
    "cache_metadata",
    "cache sample",
    (
        Field("layer", "str", max_len=64, required=True, filter=True, sort=True),
        Field("hits", "int", ge=0, le=2**62, default=0),
        Field("misses", "int", ge=0, le=2**62, default=0),
        Field("writes", "int", ge=0, le=2**62, default=0),
        Field("hit_rate", "float", ge=0, le=1, default=0.0, sort=True),
    ),
    indexes=(("layer", "created_at"),),
    description="Hit and miss counts of one cache layer at one moment (sampled by the scheduler).",
)

RECORD_TYPES: tuple[RecordType, ...] = (
    WORKFLOWS,
    WORKFLOW_EXECUTIONS,
    GUARDRAILS,
    MCP_CONNECTIONS,
    FLOWS,
    FLOW_VERSIONS,
    REPOSITORIES,
    ANALYSIS_REQUESTS,
    ANALYSIS_RESULTS,
    RAG_ANALYSIS_RESULTS,
    AI_REQUEST_STATS,
    CACHE_METADATA,
)
_BY_TABLE = {spec.table: spec for spec in RECORD_TYPES}


def by_table(table: str) -> RecordType | None:
    return _BY_TABLE.get(table)
