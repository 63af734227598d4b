"""What every HTTP route shares: the error answer, the language, the bearer token, the body.

Kept apart from :mod:`chatd.gateway.app` (the auth routes and the application) so that the
attachment routes use it without importing the application that mounts them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatd.core.accounts import Principal
from chatd.core.errors import (
    ChatdError,
    ClientError,
    FrameTooLargeError,
    MalformedFrameError,
    UnauthenticatedError,
)
from chatd.gateway.context import Gateway
from chatd.gateway.error_table import transport
from chatd.gateway.internal_errors import log_internal
from chatd.i18n import DEFAULT_LANGUAGE, N_, Language, from_accept_language, language

MAX_BODY_BYTES = 4096


def request_language(request: Request) -> Language:
    """The account's language once the request is authenticated (:func:`authenticated`),
    else its ``Accept-Language``, else the server's default."""
    chosen: Language | None = getattr(request.state, "language", None)
    gateway: Gateway = request.app.state.gateway
    return (
        chosen
        or from_accept_language(request.headers.get("accept-language"))
        or language(gateway.settings.accounts.default_language)
        or DEFAULT_LANGUAGE
    )


async def authenticated(request: Request, gateway: Gateway) -> Principal:
    """The session of the request's bearer token; its account's language applies from now."""
    principal = await gateway.auth.authenticate(bearer_token(request))
    request.state.language = principal.language
    return principal


def error_response(exc: ChatdError, request: Request) -> JSONResponse:
    """The JSON error answer, its status from :mod:`chatd.gateway.error_table`; an error that
    is not a client's (a server fault) is the generic ``internal_error``: nothing leaks."""
    lang = request_language(request)
    shown = exc if isinstance(exc, ClientError) else ChatdError()
    status = transport(shown).status
    return JSONResponse({"code": shown.code, "message": shown.message_in(lang)}, status)


def endpoint(
    handler: Callable[[Request, Gateway], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        try:
            return await handler(request, gateway)
        except ChatdError as exc:
            if not isinstance(exc, ClientError):
                log_internal(request.url.path, exc)
            return error_response(exc, request)
        except Exception as exc:
            log_internal(request.url.path, exc)
            return error_response(ChatdError(), request)

    return endpoint


async def read_json(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise FrameTooLargeError(
                N_("The request is larger than {max} bytes."), max=MAX_BODY_BYTES
            )
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        obj = None
    if not isinstance(obj, dict):
        raise MalformedFrameError(N_("The request body must be one JSON object."))
    return obj


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError(
            N_("You are not logged in (send the token as 'Authorization: Bearer <token>').")
        )
    return token.strip()
