"""The admin page's login and logout: a form, a cookie session, and a CSRF token bound to each.

`GET /admin/login` gives a nonce cookie and a form carrying its CSRF token; the form posts JSON (as every
write to ragstore must, api/origin.py) with the token in `X-CSRF-Token`. A login sets the session cookie
(`HttpOnly`, `SameSite=Strict`, `Path=/admin`, `Secure` over TLS); the page it leads to carries the session's
own CSRF token for its buttons and its logout. A missing or wrong token is a 403 before anything else runs.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from ragstore.api.admin_ui.render import render
from ragstore.api.deps import get_store
from ragstore.api.errors import DOWN, JSON_BODY, error_responses, error_responses_of_a_page
from ragstore.api.permissions import public
from ragstore.api.user_auth import (
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    set_cookie,
    too_many,
)
from ragstore.errors import Forbidden, TooManyRequests
from ragstore.schemas.users import AdminLogin, LoginRequest
from ragstore.security.tokens import new_token
from ragstore.service import RagStore

router = APIRouter(prefix="/admin", tags=["admin"])

LOGIN_FORM_TTL_S = 3600
BAD_CSRF = (403, "The X-CSRF-Token header is missing or is not this form's (reload the page).")
BAD_LOGIN = (401, "The e-mail address or the password is wrong, or the account is disabled (one answer for all).")
LOCKED = (429, "Too many failed logins for this account or address; Retry-After says when to retry.")


def _login_csrf(store: RagStore, nonce: str) -> str:
    return store.users.csrf_token(f"login-form|{nonce}")


@router.get(
    "/login",
    response_class=HTMLResponse,
    summary="The admin page's login form (HTML)",
    responses=error_responses_of_a_page(DOWN),
    dependencies=[Depends(public())],
)
def login_form(request: Request, store: RagStore = Depends(get_store)) -> HTMLResponse:
    nonce = new_token()
    response = render("login.html", request, None, csrf=_login_csrf(store, nonce))
    set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_FORM_TTL_S)
    return response


@router.post(
    "/login",
    response_model=AdminLogin,
    summary="Log in to the admin page: sets its session cookie (needs the form's X-CSRF-Token)",
    responses=error_responses(*JSON_BODY, BAD_LOGIN, BAD_CSRF, LOCKED, DOWN),
    dependencies=[Depends(public())],
)
def login(body: LoginRequest, request: Request, store: RagStore = Depends(get_store)) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or ""
    if not nonce or not store.users.csrf_valid(f"login-form|{nonce}", request.headers.get(CSRF_HEADER)):
        raise Forbidden(f"the login form's CSRF token ({CSRF_HEADER}) is missing or wrong; reload the login page")
    address = request.client.host if request.client else ""
    try:
        made = store.users.cookie_login(body.email, body.password, request.headers.get("user-agent", ""), address)
    except TooManyRequests as exc:
        return too_many(exc)
    response = JSONResponse(AdminLogin(user=made.user).model_dump(mode="json"))
    set_cookie(response, request, SESSION_COOKIE, made.token, made.max_age_s)
    clear_cookie(response, request, LOGIN_COOKIE)
    return response


@router.post(
    "/logout",
    status_code=204,
    summary="End the admin page session (needs the page's X-CSRF-Token)",
    responses=error_responses(BAD_CSRF, DOWN),
    dependencies=[Depends(public())],
)
def logout(request: Request, store: RagStore = Depends(get_store)) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:  # nothing to end: logging out twice is not an error
        response = Response(status_code=204)
        clear_cookie(response, request, SESSION_COOKIE)
        return response
    if not store.users.csrf_valid(cookie, request.headers.get(CSRF_HEADER)):
        raise Forbidden(f"this request needs the page's CSRF token in the {CSRF_HEADER} header; reload the page")
    store.users.cookie_logout(cookie)
    response = Response(status_code=204)
    clear_cookie(response, request, SESSION_COOKIE)
    return response
