"""What tests of users share: a stand-in for the authentication middleware's user part."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from ragstore.api.limits import send_error
from ragstore.api.user_auth import user_principal
from ragstore.errors import RagstoreError


def with_user_auth(app: FastAPI) -> FastAPI:
    """What the authentication middleware does for users (the lead wires the real one at the merge)."""

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            request.state.principal = user_principal(request)
        except RagstoreError as exc:
            answer: list[Any] = []

            async def capture(message: Any) -> None:
                answer.append(message)

            await send_error(capture, exc)
            return Response(answer[1]["body"], status_code=exc.http_status, media_type="application/json")
        return await call_next(request)

    return app
