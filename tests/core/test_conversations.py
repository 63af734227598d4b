"""The pure conversation rules (``decide``), without any I/O."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core.conversations import (
    MAX_ATTACHMENTS,
    MAX_MEMBERS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    AddMember,
    ConversationState,
    CreateConversation,
    Leave,
    MessageBody,
    Operation,
    PostMessage,
    Rename,
    apply_membership,
    clean_name,
    decide,
    referenced_users,
)
from chatd.core.errors import (
    AlreadyMemberError,
    ClientError,
    ConversationNotFound,
    ConversationShreddedError,
    NotAMemberError,
    UserDisabledError,
    UserNotFound,
    ValidationError,
)
from chatd.core.events import EventKind, MessageTag
from chatd.core.text import first_forbidden_in_name

ACTIVE = frozenset(range(1, 10))
STATE = ConversationState(5, members=frozenset({1, 2}), ever_members=frozenset({1, 2, 3}))


def test_create_produces_created_then_optional_message() -> None:
    op = CreateConversation(1, (2, 3, 2, 1), " Équipe  ", "c1", MessageBody("Bonjour"))
    created, message = decide(None, op, ACTIVE)
    assert created.kind is EventKind.CREATED and created.sender == 1
    assert created.payload == {"name": "Équipe", "members": [1, 2, 3]}
    assert message.kind is EventKind.MESSAGE
    assert message.payload == {"text": "Bonjour", "tag": None, "attachments": []}
    assert len(decide(None, CreateConversation(1, (2,), "x", "c2"), ACTIVE)) == 1


def test_create_rules() -> None:
    with pytest.raises(ValidationError):
        decide(None, CreateConversation(1, (1,), "solo", "c"), ACTIVE)
    with pytest.raises(UserNotFound) as caught:
        decide(None, CreateConversation(1, (2, 42), "x", "c"), ACTIVE)
    assert caught.value.details == {"user": 42}
    with pytest.raises(UserDisabledError):  # the creator must be an active user too
        decide(None, CreateConversation(42, (2,), "x", "c"), ACTIVE)
    too_many = tuple(range(2, MAX_MEMBERS + 2))
    with pytest.raises(ValidationError):
        decide(None, CreateConversation(1, too_many, "x", "c"), frozenset(range(MAX_MEMBERS + 2)))
    largest = tuple(range(2, MAX_MEMBERS + 1))
    drafts = decide(None, CreateConversation(1, largest, "x", "c"), frozenset(range(600)))
    assert len(drafts[0].payload["members"]) == MAX_MEMBERS
    with pytest.raises(ValidationError):
        decide(None, CreateConversation(1, (2,), "x", "c", MessageBody("  ")), ACTIVE)


def test_referenced_users() -> None:
    assert set(referenced_users(CreateConversation(1, (2, 3), "x", "c"))) == {1, 2, 3}
    assert referenced_users(AddMember(5, 1, 4, "c")) == (4,)
    assert referenced_users(PostMessage(5, 1, MessageBody("x"), "c")) == ()
    assert referenced_users(Leave(5, 1, "c")) == ()


def test_member_operations() -> None:
    (msg,) = decide(STATE, PostMessage(5, 1, MessageBody("hi", MessageTag.QUESTION), "c"), ACTIVE)
    assert (msg.kind, msg.sender, msg.payload["tag"]) == (EventKind.MESSAGE, 1, "question")
    (ren,) = decide(STATE, Rename(5, 2, " New ", "c"), ACTIVE)
    assert (ren.kind, ren.payload) == (EventKind.RENAMED, {"name": "New"})
    (add,) = decide(STATE, AddMember(5, 2, 3, "c"), ACTIVE)
    assert (add.kind, add.sender, add.payload) == (EventKind.JOINED, 2, {"user": 3})
    (left,) = decide(STATE, Leave(5, 1, "c"), ACTIVE)
    assert (left.kind, left.sender, left.payload) == (EventKind.LEFT, 1, {"user": 1})


def test_attachments_only_message_is_allowed() -> None:
    body = MessageBody("", attachments=(2**62 + 1,))
    (msg,) = decide(STATE, PostMessage(5, 1, body, "c"), ACTIVE)
    assert msg.payload["attachments"] == [2**62 + 1]
    many = MessageBody("x", attachments=tuple(range(1, MAX_ATTACHMENTS + 2)))
    with pytest.raises(ValidationError):
        decide(STATE, PostMessage(5, 1, many, "c"), ACTIVE)
    for bad in ((7, 7), (0,), (2**63,)):
        with pytest.raises(ValidationError):
            decide(STATE, PostMessage(5, 1, MessageBody("x", attachments=bad), "c"), ACTIVE)


@pytest.mark.parametrize(
    ("state", "op", "error"),
    [
        (None, PostMessage(5, 1, MessageBody("x"), "c"), ConversationNotFound),
        (STATE, PostMessage(5, 4, MessageBody("x"), "c"), ConversationNotFound),
        (STATE, Leave(5, 4, "c"), ConversationNotFound),
        (STATE, PostMessage(5, 3, MessageBody("x"), "c"), NotAMemberError),
        (STATE, Rename(5, 3, "x", "c"), NotAMemberError),
        (STATE, AddMember(5, 3, 4, "c"), NotAMemberError),
        (STATE, Leave(5, 3, "c"), NotAMemberError),
        (STATE, AddMember(5, 1, 2, "c"), AlreadyMemberError),
        (STATE, AddMember(5, 1, 1, "c"), AlreadyMemberError),
        (STATE, AddMember(5, 1, 42, "c"), UserNotFound),
        (STATE, PostMessage(5, 1, MessageBody(""), "c"), ValidationError),
        (STATE, PostMessage(5, 1, MessageBody("x" * (MAX_TEXT_CHARS + 1)), "c"), ValidationError),
        (STATE, Rename(5, 1, "", "c"), ValidationError),
        (STATE, Rename(5, 1, "x" * (MAX_NAME_CHARS + 1), "c"), ValidationError),
        (STATE, Rename(5, 1, "a\nb", "c"), ValidationError),
        (STATE, PostMessage(5, 1, MessageBody("x"), ""), ValidationError),
        (STATE, PostMessage(5, 1, MessageBody("x"), "x" * 65), ValidationError),
        (STATE, PostMessage(5, 1, MessageBody("x"), "tab\t"), ValidationError),
        (
            ConversationState(5, frozenset({1}), frozenset({1}), shredded=True),
            PostMessage(5, 1, MessageBody("x"), "c"),
            ConversationShreddedError,
        ),
        (
            ConversationState(5, frozenset({1}), frozenset({1}), shredded=True),
            PostMessage(5, 2, MessageBody("x"), "c"),
            ConversationNotFound,  # a stranger does not learn it existed
        ),
    ],
)
def test_rule_errors(
    state: ConversationState | None, op: Operation, error: type[ClientError]
) -> None:
    with pytest.raises(error):
        decide(state, op, ACTIVE)


def test_apply_membership() -> None:
    created = apply_membership(ConversationState(5), "created", {"members": [1, 2]})
    assert (created.members, created.ever_members) == ({1, 2}, {1, 2})
    joined = apply_membership(created, "joined", {"user": 3})
    assert (joined.members, joined.ever_members) == ({1, 2, 3}, {1, 2, 3})
    left = apply_membership(joined, "left", {"user": 1})
    assert (left.members, left.ever_members) == ({2, 3}, {1, 2, 3})
    assert apply_membership(left, "message", {"text": "x"}) is left
    assert apply_membership(left, "renamed", {"name": "x"}) is left


# ----------------------------------------------------------------------------- properties

USERS = range(1, 6)
ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(["post", "rename", "add", "leave"]),
        st.sampled_from(USERS),
        st.sampled_from(USERS),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(creator=st.sampled_from(USERS), invited=st.sets(st.sampled_from(USERS)), ops=ops_strategy)
def test_random_operations_keep_the_membership_invariants(
    creator: int, invited: set[int], ops: list[tuple[str, int, int]]
) -> None:
    """Whatever the sequence: only members act, nobody removes someone else, an ex-member
    gets NotAMemberError and a stranger ConversationNotFound, and the state after each
    accepted event is what the events say."""
    active = frozenset(USERS)
    try:
        drafts = decide(None, CreateConversation(creator, tuple(invited), "c", "id"), active)
    except ValidationError:
        assert invited <= {creator}
        return
    state = ConversationState(1)
    for d in drafts:
        state = apply_membership(state, d.kind, d.payload)
    assert state.members == {creator} | invited
    for action, sender, target in ops:
        op: Operation
        if action == "post":
            op = PostMessage(1, sender, MessageBody("hello"), "id")
        elif action == "rename":
            op = Rename(1, sender, "name", "id")
        elif action == "add":
            op = AddMember(1, sender, target, "id")
        else:
            op = Leave(1, sender, "id")
        try:
            (draft,) = decide(state, op, active)
        except ConversationNotFound:
            assert sender not in state.ever_members
            continue
        except NotAMemberError:
            assert sender in state.ever_members - state.members
            continue
        except AlreadyMemberError:
            assert isinstance(op, AddMember) and target in state.members
            continue
        assert sender in state.members
        assert draft.sender == sender
        before = state
        state = apply_membership(state, draft.kind, draft.payload)
        assert state.members <= state.ever_members
        assert before.ever_members <= state.ever_members
        removed = before.members - state.members
        assert removed <= {sender}  # only oneself may leave
        if isinstance(op, Leave):
            assert removed == {sender} and draft.payload == {"user": sender}
        if isinstance(op, AddMember):
            assert state.members == before.members | {target}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=MAX_NAME_CHARS + 20))
def test_clean_name_accepts_only_clean_names(raw: str) -> None:
    try:
        name = clean_name(raw)
    except ValidationError as exc:
        assert exc.details["field"] == "name"
        stripped = unicodedata.normalize("NFC", raw).strip()
        assert (
            not stripped
            or len(stripped) > MAX_NAME_CHARS
            or first_forbidden_in_name(stripped) is not None  # chatd.core.text's rule
        )
        return
    assert name == unicodedata.normalize("NFC", name) == name.strip()
    assert 1 <= len(name) <= MAX_NAME_CHARS
    assert not any(unicodedata.category(ch) == "Cc" for ch in name)
