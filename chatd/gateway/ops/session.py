"""Session operations: ``auth`` (the first frame), ``ping``, ``accept_terms``,
``set_language``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Self

from chatd.core.accounts import MAX_TOKEN_CHARS, Principal
from chatd.core.errors import ValidationError
from chatd.gateway.ops.base import Call, Reply, Request, now_ms
from chatd.gateway.wire import (
    MAX_LANGUAGE_TAG_CHARS,
    MAX_TERMS_CHARS,
    Fields,
    encode_ok,
)
from chatd.i18n import N_, Language, language

BAD_TERMS_VERSION = N_("This version of the terms of use is not valid.")


def user_map(principal: Principal) -> dict[str, Any]:
    """The logged-in user as ``hello`` and the login answer show them."""
    profile = principal.profile
    return {
        "id": principal.user_id,
        "login": principal.login,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "profession": profile.profession,
        "structure": profile.structure,
        "language": principal.language,
    }


@dataclass(frozen=True, slots=True)
class Auth(Request):
    op = "auth"
    opens_session = True
    rid: int
    token: str
    lang: Language | None = None  # the client's language, if chatd speaks it

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        token = f.text("token", max_chars=MAX_TOKEN_CHARS)
        return cls(
            rid, token, language(f.text("lang", max_chars=MAX_LANGUAGE_TAG_CHARS, default=None))
        )

    async def run(self, call: Call) -> Reply:  # refused by Session.admit before it gets here
        raise AssertionError("auth is handled by the connection")


@dataclass(frozen=True, slots=True)
class Ping(Request):
    op = "ping"
    terms_free = True
    password_free = True
    rid: int

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        return cls(rid)

    async def run(self, call: Call) -> Reply:
        return encode_ok(self.rid, server_time=now_ms())


@dataclass(frozen=True, slots=True)
class AcceptTerms(Request):
    op = "accept_terms"
    terms_free = True
    rid: int
    version: str

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        return cls(rid, f.text("version", max_chars=MAX_TERMS_CHARS, invalid=BAD_TERMS_VERSION))

    async def run(self, call: Call) -> Reply:
        assert call.session.principal is not None
        principal = await call.services.auth.accept_terms(call.session.principal, self.version)
        call.session.refreshed(principal, time.monotonic())
        return encode_ok(self.rid, terms_version=self.version)


@dataclass(frozen=True, slots=True)
class SetLanguage(Request):
    op = "set_language"
    terms_free = True  # the terms may be read in another language
    rid: int
    language: Language | None  # None: forget the account's choice

    @classmethod
    def parse(cls, rid: int, f: Fields) -> Self:
        raw = f.text("language", max_chars=MAX_LANGUAGE_TAG_CHARS, default=None)
        chosen = language(raw)
        if raw is not None and (chosen is None or raw != chosen):
            raise ValidationError(
                N_(
                    'The language must be "fr" (French) or "en" (English), or none to follow'
                    " your application."
                ),
                field="language",
            )
        return cls(rid, chosen)

    async def run(self, call: Call) -> Reply:
        session = call.session
        assert session.principal is not None
        principal = await call.services.auth.set_language(session.principal, self.language)
        session.refreshed(principal, time.monotonic())
        return encode_ok(self.rid, language=self.language, speaking=session.language)


REQUESTS = (Auth, Ping, AcceptTerms, SetLanguage)
