"""Contract: conversation operations and their rules (every backend)."""

from __future__ import annotations

import asyncio

import pytest

from chatd.core.conversations import (
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    AddMember,
    Leave,
    MessageBody,
    PostMessage,
    Rename,
)
from chatd.core.errors import (
    AlreadyMemberError,
    ClientError,
    ConversationNotFound,
    NotAMemberError,
    UserDisabledError,
    UserNotFound,
    ValidationError,
)
from chatd.core.events import EventKind, MessageTag
from chatd.core.records import Interval
from chatd.store.contract import Store
from tests.conftest import (
    add_member,
    create_conv,
    leave,
    make_users,
    msg_id,
    post,
    rename,
)


async def all_seqs(store: Store, user: int, conv: int) -> list[int]:
    page = await store.events_after(user, conv, 0, 1000)
    return [e.seq for e in page.events]


async def test_create_with_first_message(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    result = await create_conv(store, a, [b, c], name="  Dr House's team ", first="Bonjour")
    assert result.duplicate is False
    assert (result.first_seq, result.last_seq) == (1, 2)
    created, message = result.events
    assert (created.seq, created.kind, created.sender) == (1, EventKind.CREATED, a)
    assert created.payload == {"name": "Dr House's team", "members": [a, b, c]}
    assert (message.seq, message.kind, message.sender) == (2, EventKind.MESSAGE, a)
    assert message.payload == {"text": "Bonjour", "tag": None, "attachments": []}
    assert created.conv_id == message.conv_id == result.conv_id
    conv = result.conv_id
    assert await store.current_members(conv) == {a, b, c}
    for user in (a, b, c):
        assert await store.intervals(user, conv) == (Interval(1, None),)
        window = await store.visible_window(user, conv)
        assert window.events == result.events
        assert (window.archived, window.has_more, window.window_start) == (False, False, 1)


async def test_create_without_first_message_and_member_dedup(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    result = await create_conv(store, a, [b, a, b])
    assert (result.first_seq, result.last_seq) == (1, 1)
    assert result.events[0].payload["members"] == [a, b]
    assert await store.current_members(result.conv_id) == {a, b}


async def test_conversations_get_distinct_ids(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    ids = [(await create_conv(store, a, [b])).conv_id for _ in range(3)]
    assert len(set(ids)) == 3
    heads = await store.conversation_heads(b)
    assert {h.conv_id for h in heads} == set(ids)


async def test_add_member_records_who_added_whom(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b], first="before carol")).conv_id
    result = await add_member(store, conv, b, c)
    (joined,) = result.events
    assert (joined.seq, joined.kind, joined.sender) == (3, EventKind.JOINED, b)
    assert joined.payload == {"user": c}
    assert await store.current_members(conv) == {a, b, c}
    assert await store.intervals(c, conv) == (Interval(3, None),)
    # The newcomer sees from their join on, nothing before.
    await post(store, conv, a, "after carol")
    window = await store.visible_window(c, conv)
    assert [e.seq for e in window.events] == [3, 4]
    assert window.window_start == 3
    assert window.archived is False
    assert await all_seqs(store, c, conv) == [3, 4]
    before = await store.events_before(c, conv, 100, 10)
    assert [e.seq for e in before.events] == [3, 4]


async def test_leave_records_the_leaver(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b, c])).conv_id
    result = await leave(store, conv, b)
    (left,) = result.events
    assert (left.seq, left.kind, left.sender) == (2, EventKind.LEFT, b)
    assert left.payload == {"user": b}
    assert await store.current_members(conv) == {a, c}
    assert await store.intervals(b, conv) == (Interval(1, 3),)


async def test_rename_and_message_tags(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b], name="Old")).conv_id
    renamed = (await rename(store, conv, b, "  Nouveau nom  ")).events[0]
    assert (renamed.kind, renamed.sender, renamed.payload) == (
        EventKind.RENAMED,
        b,
        {"name": "Nouveau nom"},
    )
    important = (await post(store, conv, a, "Urgent", tag=MessageTag.IMPORTANT)).events[0]
    question = (await post(store, conv, b, "Dosage?", tag=MessageTag.QUESTION)).events[0]
    plain = (await post(store, conv, b, "Merci")).events[0]
    assert important.payload["tag"] == "important"
    assert question.payload["tag"] == "question"
    assert plain.payload["tag"] is None
    window = await store.visible_window(a, conv)
    assert [e.payload.get("tag") for e in window.events[-3:]] == ["important", "question", None]
    assert [e.payload.get("text") for e in window.events[-3:]] == ["Urgent", "Dosage?", "Merci"]


async def test_operations_of_one_member_from_several_conversations_stay_apart(
    store: Store,
) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    one = (await create_conv(store, a, [b], first="one")).conv_id
    two = (await create_conv(store, a, [c], first="two")).conv_id
    await post(store, one, b, "one more")
    assert await all_seqs(store, a, one) == [1, 2, 3]
    assert await all_seqs(store, a, two) == [1, 2]
    with pytest.raises(ConversationNotFound):
        await store.visible_window(b, two)


# ----------------------------------------------------------------------------- rule errors


async def test_non_member_gets_conversation_not_found(store: Store) -> None:
    a, b, stranger, d = await make_users(store, "alice", "bob", "eve", "dave")
    conv = (await create_conv(store, a, [b], first="secret")).conv_id
    ops = [
        PostMessage(conv, stranger, MessageBody("hi"), msg_id()),
        Rename(conv, stranger, "mine", msg_id()),
        AddMember(conv, stranger, d, msg_id()),
        Leave(conv, stranger, msg_id()),
    ]
    for op in ops:
        with pytest.raises(ConversationNotFound):
            await store.apply(op)
    with pytest.raises(ConversationNotFound):
        await store.visible_window(stranger, conv)
    with pytest.raises(ConversationNotFound):
        await store.events_after(stranger, conv, 0, 100)
    with pytest.raises(ConversationNotFound):
        await store.events_before(stranger, conv, 100, 100)
    assert await store.conversation_heads(stranger) == []
    assert await store.intervals(stranger, conv) == ()
    assert await all_seqs(store, a, conv) == [1, 2]


async def test_unknown_conversation_is_not_found(store: Store) -> None:
    (a,) = await make_users(store, "alice")
    with pytest.raises(ConversationNotFound):
        await post(store, 424242, a, "hello?")
    with pytest.raises(ConversationNotFound):
        await store.visible_window(a, 424242)


async def test_ex_member_gets_not_a_member(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b])).conv_id
    await leave(store, conv, b)
    ops = [
        PostMessage(conv, b, MessageBody("still here?"), msg_id()),
        Rename(conv, b, "mine", msg_id()),
        AddMember(conv, b, c, msg_id()),
        Leave(conv, b, msg_id()),
    ]
    for op in ops:
        with pytest.raises(NotAMemberError):
            await store.apply(op)
    assert await all_seqs(store, a, conv) == [1, 2]


async def test_adding_an_existing_member_is_refused(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    with pytest.raises(AlreadyMemberError):
        await add_member(store, conv, a, b)
    with pytest.raises(AlreadyMemberError):
        await add_member(store, conv, b, b)
    assert await all_seqs(store, a, conv) == [1]


async def test_unknown_or_disabled_users_cannot_be_added(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    await store.set_user_disabled(c, True)
    with pytest.raises(UserNotFound):
        await create_conv(store, a, [b, 9999])
    with pytest.raises(UserNotFound):
        await create_conv(store, a, [c])
    assert await store.conversation_heads(a) == []  # no conversation was created
    conv = (await create_conv(store, a, [b])).conv_id
    with pytest.raises(UserNotFound):
        await add_member(store, conv, a, 9999)
    with pytest.raises(UserNotFound):
        await add_member(store, conv, a, c)
    await store.set_user_disabled(c, False)
    await add_member(store, conv, a, c)
    assert await store.current_members(conv) == {a, b, c}


async def test_unknown_creator_is_refused_without_failing_others(store: Store) -> None:
    """A creation by a user that does not exist is a rule error of its own: it must not
    take the operations committed with it down (they share one transaction).  Found by this
    suite: the creator was not checked, and the membership row's foreign key failed the
    whole batch with ``unavailable``."""
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    results = await asyncio.gather(
        post(store, conv, a, "one"),
        create_conv(store, 9999, [b]),
        post(store, conv, b, "two"),
        return_exceptions=True,
    )
    assert isinstance(results[1], UserDisabledError)
    assert [r.last_seq for r in (results[0], results[2])] == [2, 3]  # type: ignore[union-attr]
    assert await all_seqs(store, a, conv) == [1, 2, 3]
    assert [h.conv_id for h in await store.conversation_heads(b)] == [conv]


async def test_disabled_user_cannot_create(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    await store.set_user_disabled(a, True)
    with pytest.raises(UserDisabledError):
        await create_conv(store, a, [b], first="hello")
    assert await store.conversation_heads(b) == []


@pytest.mark.parametrize(
    ("text", "field"),
    [("", "text"), ("   \n\t", "text"), ("x" * (MAX_TEXT_CHARS + 1), "text")],
)
async def test_invalid_message_text_is_refused(store: Store, text: str, field: str) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    with pytest.raises(ValidationError) as caught:
        await post(store, conv, a, text)
    assert caught.value.details.get("field") == field
    with pytest.raises(ValidationError):
        await create_conv(store, a, [b], first=text)
    assert await all_seqs(store, a, conv) == [1]
    assert len(await store.conversation_heads(a)) == 1


async def test_longest_message_text_is_accepted(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    text = "é" * MAX_TEXT_CHARS
    await post(store, conv, a, text)
    assert (await store.visible_window(b, conv)).events[-1].payload["text"] == text


@pytest.mark.parametrize("name", ["", "   ", "x" * (MAX_NAME_CHARS + 1), "bell\x07name"])
async def test_invalid_conversation_name_is_refused(store: Store, name: str) -> None:
    a, b = await make_users(store, "alice", "bob")
    with pytest.raises(ValidationError):
        await create_conv(store, a, [b], name=name)
    conv = (await create_conv(store, a, [b], name="ok")).conv_id
    with pytest.raises(ValidationError):
        await rename(store, conv, a, name)
    assert await all_seqs(store, a, conv) == [1]
    assert len(await store.conversation_heads(a)) == 1


async def test_conversation_needs_another_participant(store: Store) -> None:
    (a,) = await make_users(store, "alice")
    for members in ([], [a]):
        with pytest.raises(ValidationError):
            await create_conv(store, a, members)
    assert await store.conversation_heads(a) == []


@pytest.mark.parametrize("client_msg_id", ["", "x" * 65, "bad\nid"])
async def test_invalid_client_msg_id_is_refused(store: Store, client_msg_id: str) -> None:
    a, b = await make_users(store, "alice", "bob")
    conv = (await create_conv(store, a, [b])).conv_id
    with pytest.raises(ValidationError):
        await post(store, conv, a, "hello", client_msg_id=client_msg_id)
    with pytest.raises(ValidationError):
        await create_conv(store, a, [b], client_msg_id=client_msg_id)
    assert await all_seqs(store, a, conv) == [1]


async def test_a_failed_operation_records_nothing(store: Store) -> None:
    """After a refusal the log, the members and the idempotency keys are unchanged: the
    same client_msg_id, once the cause is fixed, appends normally."""
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b], first="hi")).conv_id
    await store.set_user_disabled(c, True)
    with pytest.raises(UserNotFound):
        await add_member(store, conv, a, c, client_msg_id="add-carol")
    with pytest.raises(ValidationError):
        await post(store, conv, a, " ", client_msg_id="post-1")
    assert await all_seqs(store, a, conv) == [1, 2]
    assert await store.current_members(conv) == {a, b}
    assert await store.intervals(c, conv) == ()
    await store.set_user_disabled(c, False)
    retried = await add_member(store, conv, a, c, client_msg_id="add-carol")
    assert (retried.duplicate, retried.first_seq) == (False, 3)
    posted = await post(store, conv, a, "now with text", client_msg_id="post-1")
    assert (posted.duplicate, posted.first_seq) == (False, 4)
    assert (await store.verify()).ok


async def test_failures_in_a_concurrent_batch_fail_alone(store: Store) -> None:
    a, b, c = await make_users(store, "alice", "bob", "carol")
    conv = (await create_conv(store, a, [b])).conv_id
    ops = []
    for i in range(30):
        if i % 3 == 0:
            ops.append(post(store, conv, c, f"intruder {i}"))  # never a member
        elif i % 3 == 1:
            ops.append(post(store, conv, a, ""))  # empty
        else:
            ops.append(post(store, conv, b, f"fine {i}"))
    results = await asyncio.gather(*ops, return_exceptions=True)
    good = [r for r in results if not isinstance(r, BaseException)]
    bad = [r for r in results if isinstance(r, BaseException)]
    assert len(good) == 10 and len(bad) == 20
    assert all(isinstance(r, ClientError) for r in bad)
    assert sorted(r.first_seq for r in good) == list(range(2, 12))
    assert await all_seqs(store, a, conv) == list(range(1, 12))


async def test_fellow_members_are_whoever_shared_a_conversation_ever(store: Store) -> None:
    a, b, c, d, e = await make_users(store, "alice", "bob", "carol", "dave", "erin")
    everyone = [a, b, c, d, e, 10**9]
    assert await store.fellow_members(a, everyone) == {a}  # oneself, before anything
    assert await store.fellow_members(a, []) == frozenset()
    conv = (await create_conv(store, a, [b])).conv_id
    await add_member(store, conv, b, c)
    await leave(store, conv, b)
    await add_member(store, conv, a, d)  # after Bob left: never members at the same time
    assert await store.fellow_members(a, everyone) == {a, b, c, d}
    assert await store.fellow_members(b, everyone) == {a, b, c, d}
    assert await store.fellow_members(e, everyone) == {e}
    assert await store.fellow_members(e, [a, 10**9]) == frozenset()
    assert await store.fellow_members(10**9, everyone) == frozenset()
