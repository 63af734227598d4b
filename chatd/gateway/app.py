"""The Starlette application: a few HTTP routes and the WebSocket route.

=========================  ======  ============================================================
route                      method  what
=========================  ======  ============================================================
``/healthz``               GET     the node, its store and broker; 503 when it cannot serve
``/v1/auth/login``         POST    ``{"login", "password"}`` → token (valid 8 h), user, terms
``/v1/auth/logout``        POST    ``Authorization: Bearer`` → revoke; its sockets close (4003)
``/v1/auth/terms``         GET     the current terms version
``/v1/auth/terms``         POST    ``Authorization: Bearer`` + ``{"version"}`` → accepted
``/v1/auth/password``      POST    ``Authorization: Bearer`` + ``{"old_password",
                                   "new_password"}`` → changed; the user's other sessions end
``/v1/attachments…``       both    upload, download, thumbnail (:mod:`chatd.gateway.attachments`)
``/v1/ws``                 WS      the live protocol (:mod:`chatd.gateway.protocol`)
=========================  ======  ============================================================

Endpoints only move bytes: parse, call a service, encode.  HTTP errors are JSON
``{"code", "message"}`` with the same stable codes as the WebSocket protocol.  Browsers are held
to ``CHATD_ALLOWED_ORIGINS`` on both sides: the WebSocket handshake checks ``Origin``, and CORS
on the HTTP routes allows only those origins.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from chatd.core.devices import device_family
from chatd.core.errors import (
    ValidationError,
)
from chatd.gateway.attachments import attachment_routes
from chatd.gateway.client_address import client_address
from chatd.gateway.connection import Connection
from chatd.gateway.context import Gateway
from chatd.gateway.http import authenticated, bearer_token, endpoint, read_json, request_language
from chatd.gateway.ops.base import now_ms
from chatd.gateway.ops.session import user_map
from chatd.i18n import N_
from chatd.services.auth import LoginResult

log = logging.getLogger("chatd.gateway")
POLICY_VIOLATION = 1008  # closing before accept makes the server answer HTTP 403


def login_body(result: LoginResult) -> dict[str, Any]:
    return {
        "token": result.token,
        "expires_at": result.principal.expires_at,
        "user": user_map(result.principal),
        "terms_version": result.terms_version,
        "terms_accepted": result.principal.terms_accepted,
        "password_change_required": result.principal.password_change_required,
    }


def request_address(request: Request, gateway: Gateway) -> str:
    """The client's address, for the login throttle (:mod:`chatd.gateway.client_address`)."""
    peer = request.client.host if request.client is not None else None
    forwarded = request.headers.getlist("x-forwarded-for")
    return client_address(peer, forwarded, gateway.settings.gateway.trusted_proxies)


async def healthz(request: Request, gateway: Gateway) -> Response:
    # The node, its store and its broker; what the queues for the sockets hold
    # (docs/protocol.md §12): counts and states, never content.  503 when this node cannot
    # serve (its database does not answer): a load balancer sends no one here.  A broker
    # that is down is reported, not fatal: the node fills from the store.
    hub = gateway.hub
    store, problems = await gateway.services.maintenance.store_health()
    serving = store == "ok"
    return JSONResponse(
        {
            "status": "ok" if serving else "unavailable",
            "node": hub.node,
            "store": store,
            "broker": gateway.services.broker.health(),
            "checkpoints": "failing" if problems else "ok",
            "server_time": now_ms(),
            "queued_bytes": hub.budget.held_total,
            "paused_sessions": hub.paused_sessions(),
        },
        status_code=200 if serving else 503,
    )


async def login(request: Request, gateway: Gateway) -> Response:
    body = await read_json(request)
    unknown = set(body) - {"login", "password"}
    if unknown:
        raise ValidationError(
            N_("The request is malformed: only the login and the password are expected."),
            field="body",
        )
    device = device_family(request.headers.get("user-agent"))
    result = await gateway.auth.login(
        body.get("login"),
        body.get("password"),
        address=request_address(request, gateway),
        device=device,
    )
    request.state.language = result.principal.language
    return JSONResponse(
        {
            **login_body(result),
            "terms_url": gateway.settings.accounts.terms_url,
            "language": request_language(request),
        }
    )


async def logout(request: Request, gateway: Gateway) -> Response:
    revoked = await gateway.auth.logout(bearer_token(request))
    return JSONResponse({"revoked": revoked})


async def terms(request: Request, gateway: Gateway) -> Response:
    if request.method == "GET":
        return JSONResponse(
            {
                "terms_version": gateway.auth.terms_version,
                "terms_url": gateway.settings.accounts.terms_url,
            }
        )
    principal = await authenticated(request, gateway)
    principal.require_usable()
    body = await read_json(request)
    principal = await gateway.auth.accept_terms(principal, body.get("version"))
    return JSONResponse(
        {"terms_version": gateway.auth.terms_version, "terms_accepted": principal.terms_accepted}
    )


async def change_password(request: Request, gateway: Gateway) -> Response:
    """Allowed behind the password gate (it is how one leaves it) and the terms gate."""
    principal = await authenticated(request, gateway)
    body = await read_json(request)
    unknown = set(body) - {"old_password", "new_password"}
    if unknown:
        raise ValidationError(
            N_("The request is malformed: only the current and the new password are expected."),
            field="body",
        )
    principal, revoked = await gateway.auth.change_password(
        principal,
        body.get("old_password"),
        body.get("new_password"),
        address=request_address(request, gateway),
    )
    return JSONResponse(
        {
            "changed": True,
            "sessions_revoked": revoked,
            "password_change_required": principal.password_change_required,
        }
    )


async def websocket_endpoint(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    origin = websocket.headers.get("origin")
    if origin is not None and origin not in gateway.settings.gateway.allowed_origins:
        await websocket.close(POLICY_VIOLATION)
        return
    await Connection(websocket, gateway).run()


def create_app(gateway: Gateway) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    # Browsers on an allowed origin may call the HTTP routes too (no cookies: tokens only).
    cors = Middleware(
        CORSMiddleware,
        allow_origins=list(gateway.settings.gateway.allowed_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-File-Name", "Range", "If-Range"],
        expose_headers=["Content-Disposition", "Content-Range", "Content-Length", "ETag"],
        max_age=600,
    )
    app = Starlette(
        middleware=[cors],
        routes=[
            Route("/healthz", endpoint(healthz), methods=["GET"]),
            Route("/v1/auth/login", endpoint(login), methods=["POST"]),
            Route("/v1/auth/logout", endpoint(logout), methods=["POST"]),
            Route("/v1/auth/terms", endpoint(terms), methods=["GET", "POST"]),
            Route("/v1/auth/password", endpoint(change_password), methods=["POST"]),
            *attachment_routes(),
            WebSocketRoute("/v1/ws", websocket_endpoint),
        ],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
