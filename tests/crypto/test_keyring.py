"""The master key file and the key ring."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from chatd.core.errors import KeyFileError
from chatd.crypto.keyring import KEY_BYTES, KeyRing, load_key_file, write_key_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate() -> None:
    ring = KeyRing.generate()
    assert len(ring.active_key) == KEY_BYTES
    assert ring.key(ring.active_id) == ring.active_key
    assert ring.key("nope") is None
    assert KeyRing.generate().active_key != ring.active_key


def test_write_then_load_roundtrip_with_mode_0600(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "sub" / "master.keys"
    write_key_file(path, ring, replace=False)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert load_key_file(path) == ring
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.keys"]  # no temp left


def test_write_refuses_to_overwrite(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "master.keys"
    write_key_file(path, ring, replace=False)
    other = KeyRing.generate()
    with pytest.raises(KeyFileError):
        write_key_file(path, other, replace=False)
    assert load_key_file(path) == ring  # the original is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["master.keys"]
    write_key_file(path, other, replace=True)
    assert load_key_file(path) == other
    assert mode(path) == 0o600


@pytest.mark.parametrize("perm", [0o644, 0o640, 0o604, 0o660, 0o700])
def test_permissive_file_is_refused(tmp_path: Path, ring: KeyRing, perm: int) -> None:
    path = tmp_path / "master.keys"
    write_key_file(path, ring, replace=False)
    path.chmod(perm)
    if perm & 0o077:
        with pytest.raises(KeyFileError) as caught:
            load_key_file(path)
        assert "chmod 600" in caught.value.message
        assert f"{perm:o}" in caught.value.message
    else:
        assert load_key_file(path) == ring  # owner-only execute bit is harmless


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as caught:
        load_key_file(tmp_path / "absent.keys")
    assert "chatd init" in caught.value.message
    folder = tmp_path / "dir.keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        load_key_file(folder)


SECRET = base64.b64encode(b"S" * 32).decode()  # what must never appear in a message


@pytest.mark.parametrize(
    "content",
    [
        f"not json {SECRET}",
        f'{{"format": 1, "active": "a", "keys": {{"a": "{SECRET}"}}',  # truncated JSON
        json.dumps({"format": 2, "active": "a", "keys": {"a": SECRET}}),
        json.dumps({"format": 1, "active": "b", "keys": {"a": SECRET}}),
        json.dumps({"format": 1, "active": "a", "keys": {"a": SECRET[:-4] + "!!!!"}}),
        json.dumps({"format": 1, "active": "a", "keys": {"a": SECRET[:20]}}),
        json.dumps({"format": 1, "active": "a", "keys": [SECRET]}),
        json.dumps({"format": 1, "keys": {"a": SECRET}}),
        json.dumps([SECRET]),
        "",
    ],
    ids=[
        "not-json",
        "truncated",
        "format",
        "active-missing",
        "bad-base64",
        "short-key",
        "keys-list",
        "no-active",
        "list",
        "empty",
    ],
)
def test_malformed_file_names_no_key_material(tmp_path: Path, content: str) -> None:
    path = tmp_path / "master.keys"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(KeyFileError) as caught:
        load_key_file(path)
    text = f"{caught.value.message} {caught.value!r} {caught.value.details}"
    for fragment in (SECRET, SECRET[:12], SECRET[8:20], "SSSS"):
        assert fragment not in text
    assert caught.value.__cause__ is None or not isinstance(caught.value.__cause__, ValueError)
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


def test_key_bytes_never_in_repr(ring: KeyRing) -> None:
    text = repr(ring) + str(ring)
    assert ring.active_key.hex() not in text
    assert base64.b64encode(ring.active_key).decode() not in text
    assert repr(ring.active_key) not in text


def test_ring_refuses_bad_keys() -> None:
    with pytest.raises(KeyFileError):
        KeyRing(active_id="a", keys={"a": b"short"})
    with pytest.raises(KeyFileError):
        KeyRing(active_id="x", keys={"a": b"k" * 32})


def test_rotation_and_retirement_rules(ring: KeyRing) -> None:
    rotated = ring.with_new_active()
    assert rotated.active_id != ring.active_id
    assert rotated.key(ring.active_id) == ring.active_key  # the old key still unwraps
    assert set(rotated.keys) == {ring.active_id, rotated.active_id}
    with pytest.raises(KeyFileError):
        rotated.without(rotated.active_id)  # the active key cannot be retired
    with pytest.raises(KeyFileError):
        rotated.without("unknown")
    retired = rotated.without(ring.active_id)
    assert set(retired.keys) == {rotated.active_id}
    assert retired.active_key == rotated.active_key
    assert ring.active_id in rotated.keys  # rings are values: the source is unchanged


def test_derived_keys_differ_by_label_and_by_kek() -> None:
    ring = KeyRing.generate().with_new_active()
    old, new = sorted(ring.keys, key=lambda kid: kid != ring.active_id)[::-1]
    keys = {ring.derived(kid, label) for kid in (old, new) for label in (b"a", b"b")}
    assert len(keys) == 4 and all(len(k) == 32 for k in keys)
    assert ring.derived(new, b"a") == ring.derived(new, b"a")
    assert not any(k in keys for k in ring.keys.values())  # never the KEK itself
