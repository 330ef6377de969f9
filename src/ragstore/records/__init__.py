"""Application records (issue 18): workflows, guardrails, MCP connections, flows, analyses, AI request
statistics and cache samples, each declared once in `types.py` and served by one generic service."""
