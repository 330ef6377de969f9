"""application records: workflows and their executions, guardrails, MCP connections, flows and their
versions, repositories and analyses, AI request statistics, cache samples

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 02:00:00

The tables match the models derived from ragstore/declarations/record_types.py (tests/test_migrations.py
compares them on both dialects). Written out here, not derived at run time, so a later change of a declaration
needs its own revision. MCP credentials are not a column: they live in `encrypted_secrets` (scope
`mcp:<id>`, security/vault.py); the row keeps only `has_credentials`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ai_request_stats",
        sa.Column("id", _id(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("kind IN ('llm', 'embedding')", name=op.f("ck_ai_request_stats_kind_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_request_stats")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ai_request_stats_created_at", "ai_request_stats", ["created_at"])
    op.create_index("ix_ai_request_stats_model_created_at", "ai_request_stats", ["model", "created_at"])
    op.create_table(
        "cache_metadata",
        sa.Column("id", _id(), nullable=False),
        sa.Column("layer", sa.String(length=64), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("misses", sa.BigInteger(), nullable=False),
        sa.Column("writes", sa.BigInteger(), nullable=False),
        sa.Column("hit_rate", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_metadata")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_cache_metadata_created_at", "cache_metadata", ["created_at"])
    op.create_index("ix_cache_metadata_layer_created_at", "cache_metadata", ["layer", "created_at"])
    op.create_table(
        "flows",
        sa.Column("id", _id(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
        sa.UniqueConstraint("name", name=op.f("uq_flows_name")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_flows_created_at", "flows", ["created_at"])
    op.create_table(
        "guardrails",
        sa.Column("id", _id(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("rules", _json(), nullable=False),
        sa.Column("applies_to", _json(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guardrails")),
        sa.UniqueConstraint("name", name=op.f("uq_guardrails_name")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_guardrails_created_at", "guardrails", ["created_at"])
    op.create_table(
        "mcp_connections",
        sa.Column("id", _id(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=2000), nullable=False),
        sa.Column("has_credentials", sa.Boolean(), nullable=False),
        sa.Column("last_successful_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "transport IN ('stdio', 'sse', 'http', 'streamable-http')", name=op.f("ck_mcp_connections_transport_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mcp_connections")),
        sa.UniqueConstraint("name", name=op.f("uq_mcp_connections_name")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mcp_connections_created_at", "mcp_connections", ["created_at"])
    op.create_table(
        "repositories",
        sa.Column("id", _id(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repositories")),
        sa.UniqueConstraint("name", name=op.f("uq_repositories_name")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_repositories_created_at", "repositories", ["created_at"])
    op.create_table(
        "workflows",
        sa.Column("id", _id(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
        sa.UniqueConstraint("name", name=op.f("uq_workflows_name")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_workflows_created_at", "workflows", ["created_at"])
    op.create_table(
        "analysis_requests",
        sa.Column("id", _id(), nullable=False),
        sa.Column("repository_id", _id(), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed')", name=op.f("ck_analysis_requests_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_analysis_requests_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_requests")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_analysis_requests_created_at", "analysis_requests", ["created_at"])
    op.create_index("ix_analysis_requests_repository_id", "analysis_requests", ["repository_id"])
    op.create_table(
        "flow_versions",
        sa.Column("id", _id(), nullable=False),
        sa.Column("flow_id", _id(), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_flow_versions_flow_id_flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_versions")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_flow_versions_created_at", "flow_versions", ["created_at"])
    op.create_index("ix_flow_versions_flow_id_flow_version", "flow_versions", ["flow_id", "flow_version"])
    op.create_table(
        "workflow_executions",
        sa.Column("id", _id(), nullable=False),
        sa.Column("workflow_id", _id(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("inputs", _json(), nullable=False),
        sa.Column("outputs", _json(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_workflow_executions_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_executions_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_executions")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_workflow_executions_created_at", "workflow_executions", ["created_at"])
    op.create_index(
        "ix_workflow_executions_workflow_id_status_started_at",
        "workflow_executions",
        ["workflow_id", "status", "started_at"],
    )
    op.create_table(
        "analysis_results",
        sa.Column("id", _id(), nullable=False),
        sa.Column("request_id", _id(), nullable=False),
        sa.Column("result", _json(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["analysis_requests.id"],
            name=op.f("fk_analysis_results_request_id_analysis_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_results")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_analysis_results_created_at", "analysis_results", ["created_at"])
    op.create_index("ix_analysis_results_request_id", "analysis_results", ["request_id"])
    op.create_table(
        "rag_analysis_results",
        sa.Column("id", _id(), nullable=False),
        sa.Column("request_id", _id(), nullable=False),
        sa.Column("result", _json(), nullable=False),
        sa.Column("chunk_ids", _json(), nullable=False),
        sa.Column("document_ids", _json(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["analysis_requests.id"],
            name=op.f("fk_rag_analysis_results_request_id_analysis_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rag_analysis_results")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_rag_analysis_results_created_at", "rag_analysis_results", ["created_at"])
    op.create_index("ix_rag_analysis_results_request_id", "rag_analysis_results", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_rag_analysis_results_request_id", table_name="rag_analysis_results")
    op.drop_index("ix_rag_analysis_results_created_at", table_name="rag_analysis_results")
    op.drop_table("rag_analysis_results")
    op.drop_index("ix_analysis_results_request_id", table_name="analysis_results")
    op.drop_index("ix_analysis_results_created_at", table_name="analysis_results")
    op.drop_table("analysis_results")
    op.drop_index("ix_workflow_executions_workflow_id_status_started_at", table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_created_at", table_name="workflow_executions")
    op.drop_table("workflow_executions")
    op.drop_index("ix_flow_versions_flow_id_flow_version", table_name="flow_versions")
    op.drop_index("ix_flow_versions_created_at", table_name="flow_versions")
    op.drop_table("flow_versions")
    op.drop_index("ix_analysis_requests_repository_id", table_name="analysis_requests")
    op.drop_index("ix_analysis_requests_created_at", table_name="analysis_requests")
    op.drop_table("analysis_requests")
    op.drop_index("ix_workflows_created_at", table_name="workflows")
    op.drop_table("workflows")
    op.drop_index("ix_repositories_created_at", table_name="repositories")
    op.drop_table("repositories")
    op.drop_index("ix_mcp_connections_created_at", table_name="mcp_connections")
    op.drop_table("mcp_connections")
    op.drop_index("ix_guardrails_created_at", table_name="guardrails")
    op.drop_table("guardrails")
    op.drop_index("ix_flows_created_at", table_name="flows")
    op.drop_table("flows")
    op.drop_index("ix_cache_metadata_layer_created_at", table_name="cache_metadata")
    op.drop_index("ix_cache_metadata_created_at", table_name="cache_metadata")
    op.drop_table("cache_metadata")
    op.drop_index("ix_ai_request_stats_model_created_at", table_name="ai_request_stats")
    op.drop_index("ix_ai_request_stats_created_at", table_name="ai_request_stats")
    op.drop_table("ai_request_stats")
