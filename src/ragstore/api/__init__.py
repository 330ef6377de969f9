"""The HTTP API (FastAPI): routers translate requests to RagStore calls and errors to status codes."""

from ragstore.api.app import create_app

__all__ = ["create_app"]
