"""What every HTTP route shares: the error answer, the language, the bearer token, the body.

Kept apart from :mod:`chatd.gateway.app` (the auth routes and the application) so that the
attachment routes use it without importing the application that mounts them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatd.core.accounts import Principal
from chatd.core.errors import (
    ChatdError,
    ClientError,
    FrameTooLargeError,
    MalformedFrameError,
    RequestTimeoutError,
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
        except RequestTimeoutError as exc:
            return cut_short(error_response(exc, request))
        except ChatdError as exc:
            if not isinstance(exc, ClientError):
                log_internal(request.url.path, exc)
            return error_response(exc, request)
        except Exception as exc:
            log_internal(request.url.path, exc)
            return error_response(ChatdError(), request)

    return endpoint


async def stalling(request: Request) -> AsyncIterator[bytes]:
    """The request body, piece by piece; :class:`RequestTimeoutError` (408) once no piece
    came for ``CHATD_HTTP_BODY_STALL_SECONDS`` (a stalled upload held its connection and its
    spool file for ever).  The deadline is on progress, not on the whole body: a slow but
    moving upload goes on."""
    gateway: Gateway = request.app.state.gateway
    seconds = gateway.settings.gateway.http_body_stall_seconds
    pieces = request.stream().__aiter__()
    while True:
        try:
            piece = await asyncio.wait_for(anext(pieces), seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeoutError(
                N_("The request stalled for {seconds} seconds and was cut; send it again."),
                seconds=seconds,
            ) from None
        yield piece


def cut_short(response: Response) -> Response:
    """``response`` to a request whose body was not read to its end: the connection closes
    after it (what is left of the body would be read as the next request)."""
    response.headers["Connection"] = "close"
    return response


async def read_json(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in stalling(request):
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
