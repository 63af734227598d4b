"""The one table from error class to HTTP status and close code (chatd/gateway/error_table.py)."""

from __future__ import annotations

import itertools

import pytest

from chatd.core import errors
from chatd.gateway.error_table import TABLE, close_code_for, transport
from chatd.gateway.protocol import CloseCode

ERROR_CLASSES = [
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, errors.ChatdError)
]


def test_one_row_per_wire_code() -> None:
    codes = [kind.code for kind in TABLE]
    assert len(codes) == len(set(codes)), codes


def test_classes_sharing_a_code_are_a_class_and_its_subclass() -> None:
    for a, b in itertools.combinations(ERROR_CLASSES, 2):
        if a.code == b.code:
            assert issubclass(a, b) or issubclass(b, a), (a, b, a.code)


@pytest.mark.parametrize(
    ("error", "status", "close"),
    [
        (errors.ChatdError(), 500, None),
        (errors.IntegrityError(), 500, None),
        (errors.ValidationError(), 400, None),
        (errors.WeakPasswordError(), 400, None),
        (errors.InvalidCredentialsError(), 401, CloseCode.UNAUTHENTICATED),
        (errors.TokenExpiredError(), 401, CloseCode.TOKEN_EXPIRED),
        (errors.TokenRevokedError(), 401, CloseCode.LOGGED_OUT),
        (errors.UserDisabledError(), 403, CloseCode.USER_DISABLED),
        (errors.TermsNotAcceptedError(), 403, None),
        (errors.ConversationNotFound(), 404, None),
        (errors.AttachmentNotFound(), 404, None),
        (errors.LoginTakenError(), 409, None),
        (errors.RateLimitedError(), 429, None),
        (errors.StoreClosedError(), 503, CloseCode.GOING_AWAY),
        (errors.FrameTooLargeError(), 413, None),
        (errors.AttachmentTooLarge(), 413, None),
        (errors.ImageTooLarge(), 422, None),
        (errors.CorruptFile(), 422, None),
        (errors.UnsupportedFileType(), 415, None),
        (errors.AttachmentArchived(), 410, None),
    ],
)
def test_lookup_follows_the_class_hierarchy(
    error: errors.ChatdError, status: int, close: CloseCode | None
) -> None:
    assert (transport(error).status, transport(error).close) == (status, close)


def test_a_session_closed_for_anything_else_is_unauthenticated() -> None:
    assert close_code_for(ValueError()) == CloseCode.UNAUTHENTICATED
    assert close_code_for(errors.UnauthenticatedError()) == CloseCode.UNAUTHENTICATED
