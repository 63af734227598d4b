"""The HTTP half of the protocol (``docs/protocol.md`` §2): login, logout, terms, password.

Small JSON requests, made with the standard library's ``urllib`` (it honours the usual
proxy variables and verifies TLS certificates), so that logging in needs no extra dependency.
Error answers carry the protocol's stable codes and become :class:`CliError`\\ s.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from clients.cli import i18n
from clients.cli.errors import CliError, NetworkError, server_error
from clients.cli.i18n import _

TIMEOUT = 15.0


def _call(
    server: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    headers = {
        "Accept": "application/json",
        "Accept-Language": i18n.header(),  # the server's sentences in chatd-cli's language
        "User-Agent": "chatd-cli",
    }
    data = None
    if body is not None:
        # UTF-8 rather than \u escapes: two long non-ASCII passwords stay under the server's
        # 4096-byte limit on bodies.  (Text that is not Unicode goes escaped, to be refused.)
        try:
            data = json.dumps(body, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(server + path, data=data, method=method, headers=headers)  # noqa: S310 - http(s) only: normalise_server
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise _http_error(exc) from None
    except OSError as exc:  # URLError and timeouts are OSErrors
        reason = getattr(exc, "reason", exc)
        raise NetworkError(
            _("Cannot reach {server}: {reason}.", server=server, reason=reason)
        ) from None
    except ValueError:
        raise not_chatd(server) from None
    if not isinstance(answer, dict):
        raise not_chatd(server)
    return answer


def not_chatd(server: str) -> CliError:
    return CliError(_("{server} did not answer like a chatd server.", server=server))


def _http_error(exc: urllib.error.HTTPError) -> CliError:
    try:
        body = json.loads(exc.read() or b"{}")
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError, OSError):
        if exc.code >= 500:
            return NetworkError(
                _("The server answered HTTP {status}; try again later.", status=str(exc.code))
            )
        return CliError(
            _("The server answered HTTP {status}: is this a chatd server?", status=str(exc.code))
        )
    return server_error(code, message)


def login(server: str, login_name: str, password: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The login answer: ``token``, ``expires_at``, ``user`` (with ``language``, the
    account's), ``language`` (the server's for this answer), ``terms_version``,
    ``terms_accepted``, ``password_change_required``."""
    body = {"login": login_name, "password": password}
    return _call(server, "POST", "/v1/auth/login", body, timeout=timeout)


def logout(server: str, token: str, timeout: float = TIMEOUT) -> bool:
    answer = _call(server, "POST", "/v1/auth/logout", token=token, timeout=timeout)
    return bool(answer.get("revoked"))


def accept_terms(server: str, token: str, version: str, timeout: float = TIMEOUT) -> bool:
    body = {"version": version}
    answer = _call(server, "POST", "/v1/auth/terms", body, token=token, timeout=timeout)
    return bool(answer.get("terms_accepted"))


def change_password(
    server: str, token: str, old_password: str, new_password: str, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """``{"changed": true, "sessions_revoked": N, "password_change_required": false}``; the
    user's other sessions are closed, this one stays valid."""
    body = {"old_password": old_password, "new_password": new_password}
    return _call(server, "POST", "/v1/auth/password", body, token=token, timeout=timeout)
