"""Which uploads a message may carry: the claim rules, decided with the message.

A message refers to attachments by id.  While the store's planner decides an operation it
checks each one (:func:`attach_to_drafts`): it exists, the sender uploaded it, no message
carries it yet — neither committed nor in the batch in flight nor earlier in this batch — and
it has not expired.  The ids in the message's payload are then replaced by what a reader needs
to show them (:meth:`~chatd.core.records.AttachmentInfo.message_ref`), which is sealed with the
message, so reads need no join.  :func:`note_claims` records what the appended events carry,
for the backend to set the references in the same transaction as the append.

Pure rules: the backend loads the :class:`Claimable` rows and writes the claims.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chatd.core.errors import AttachmentAlreadySent, AttachmentExpired, AttachmentNotFound
from chatd.core.events import Event, EventDraft, EventKind
from chatd.core.ids import format_attachment_id
from chatd.i18n import N_

# The message-payload key that holds attachment references.
PAYLOAD_KEY = "attachments"


@dataclass(frozen=True, slots=True)
class Claimable:
    """An attachment as the writer sees it when a message refers to it."""

    id: int
    uploader: int
    expires_at: int
    sent: bool  # a committed message, or the batch in flight, carries it already
    ref: dict[str, Any]  # AttachmentInfo.message_ref()


def attach_to_drafts(
    drafts: list[EventDraft],
    sender: int,
    attachments: Mapping[int, Claimable],
    claimed: Mapping[int, Any],
    now: int,
) -> list[EventDraft]:
    """``drafts`` with each message's attachment ids replaced by their references.

    Raises the ClientError of the first attachment that may not be sent: unknown, discarded
    or someone else's (``attachment_not_found``), carried by another message already
    (``attachment_already_sent``; ``claimed`` holds those taken earlier in this batch), or
    waiting longer than its time to live (``attachment_expired``).
    """
    out = drafts
    for index, draft in enumerate(drafts):
        ids = draft.payload.get(PAYLOAD_KEY) if draft.kind is EventKind.MESSAGE else None
        if not ids:
            continue
        refs = []
        for attachment_id in ids:
            wire = format_attachment_id(attachment_id)
            found = attachments.get(attachment_id)
            if found is None or found.uploader != sender:
                raise AttachmentNotFound(
                    N_(
                        "Attachment {attachment} does not exist, was discarded, or was uploaded"
                        " by someone else."
                    ),
                    attachment=wire,
                )
            if found.sent or attachment_id in claimed:
                raise AttachmentAlreadySent(attachment=wire)
            if found.expires_at <= now:
                raise AttachmentExpired(attachment=wire)
            refs.append(found.ref)
        if out is drafts:
            out = list(drafts)
        out[index] = EventDraft(draft.kind, draft.sender, {**draft.payload, PAYLOAD_KEY: refs})
    return out


def note_claims(events: Iterable[Event], claims: dict[int, tuple[int, int]]) -> None:
    """Record the attachments the appended ``events`` carry: id → (conv, seq)."""
    for event in events:
        if event.kind != EventKind.MESSAGE:
            continue
        for ref in event.payload.get(PAYLOAD_KEY) or ():
            claims[int(ref["id"], 16)] = (event.conv_id, event.seq)
