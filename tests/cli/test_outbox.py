"""The outbox file: written before sending, shared safely by several processes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from clients.cli.config import ENV_CONFIG_DIR
from clients.cli.outbox import OutboxEntry, OutboxFile, decode, encode


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OutboxFile:
    monkeypatch.setenv(ENV_CONFIG_DIR, str(tmp_path))
    return OutboxFile.of("http://127.0.0.1:8470", 12)


def test_entries_keep_their_id_and_order_across_processes(box: OutboxFile) -> None:
    first = OutboxEntry.new("send", {"conv": 3, "text": "un"})
    second = OutboxEntry.new("create", {"members": [4], "name": "Sujet"})
    box.add(first)
    box.add(second)
    box.add(first)  # the same change twice is one entry
    other_process = OutboxFile(box.path)
    assert other_process.pending() == [first, second]
    assert first.request() == {"conv": 3, "text": "un", "client_msg_id": first.client_msg_id}
    assert (first.conv, second.conv) == (3, None)
    assert stat.S_IMODE(box.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(box.path.parent.stat().st_mode) == 0o700
    assert other_process.remove(first.client_msg_id)
    assert not box.remove(first.client_msg_id)
    assert box.pending() == [second]


def test_a_damaged_file_is_set_aside_not_fatal(box: OutboxFile) -> None:
    box.add(OutboxEntry.new("send", {"conv": 3, "text": "un"}))
    box.path.write_text("{not json")
    assert box.pending() == []
    assert box.path.with_name(box.path.name + ".damaged").exists()
    good = OutboxEntry.new("leave", {"conv": 3})
    text = encode([good]).replace('"entries": [', '"entries": [{"op": "send"}, ', 1)
    assert decode(text) == [good]  # an unreadable entry is skipped, the rest kept
