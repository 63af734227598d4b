"""Master key-encryption keys (KEKs) and the key file that holds them.

The key file is JSON, mode 0600, written atomically (temporary file, fsync, rename, fsync of
the directory) so that a crash during ``chatd keys rotate`` leaves either the old or the new file,
never half of one::

    {"format": 1, "active": "3f9a0c21", "keys": {"3f9a0c21": "<base64 of 32 bytes>", ...}}

Several KEKs may be loaded at once: the active one wraps new data keys, the others still unwrap
the data keys they wrapped until ``chatd keys rotate`` has re-wrapped them and the old KEK is
retired.  Key bytes never appear in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from chatd.core.errors import KeyFileError
from chatd.i18n import N_

KEY_BYTES = 32
KEY_FILE_FORMAT = 1


def new_key_id() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class KeyRing:
    """The loaded KEKs by key id, and which one is active."""

    active_id: str
    keys: dict[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise KeyFileError(N_("The active key id is not among the keys of the key file."))
        for kid, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise KeyFileError(
                    N_("Key {kid} is not {size} bytes long."), kid=kid, size=KEY_BYTES
                )

    @classmethod
    def generate(cls) -> KeyRing:
        kid = new_key_id()
        return cls(active_id=kid, keys={kid: secrets.token_bytes(KEY_BYTES)})

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active_id]

    def key(self, kid: str) -> bytes | None:
        return self.keys.get(kid)

    def derived(self, kid: str, label: bytes) -> bytes:
        """A key for one purpose (``label``) derived from KEK ``kid``: the integrity keys
        (checkpoints, row MACs) come from the key file itself, so they are never in the
        database, not even wrapped.  KeyError if ``kid`` is not loaded."""
        return hmac.new(self.keys[kid], b"chatd-kek-derive\x00" + label, hashlib.sha256).digest()

    def with_new_active(self) -> KeyRing:
        """A ring with a fresh active KEK; the previous keys stay loaded for unwrapping."""
        kid = new_key_id()
        while kid in self.keys:
            kid = new_key_id()
        return KeyRing(active_id=kid, keys={**self.keys, kid: secrets.token_bytes(KEY_BYTES)})

    def without(self, kid: str) -> KeyRing:
        if kid == self.active_id:
            raise KeyFileError(N_("The active key cannot be retired; rotate first."))
        if kid not in self.keys:
            raise KeyFileError(N_("No key {kid} in the key file."), kid=kid)
        return KeyRing(
            active_id=self.active_id, keys={k: v for k, v in self.keys.items() if k != kid}
        )


def _encode(ring: KeyRing) -> bytes:
    doc = {
        "format": KEY_FILE_FORMAT,
        "active": ring.active_id,
        "keys": {kid: base64.b64encode(key).decode() for kid, key in ring.keys.items()},
    }
    return json.dumps(doc, indent=1).encode()


def _decode(raw: bytes, path: Path) -> KeyRing:
    try:
        doc = json.loads(raw)
        if doc.get("format") != KEY_FILE_FORMAT:
            raise KeyFileError(N_("Key file {path} has an unknown format."), path=str(path))
        keys = {
            str(kid): base64.b64decode(value, validate=True) for kid, value in doc["keys"].items()
        }
        return KeyRing(active_id=str(doc["active"]), keys=keys)
    except KeyFileError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        # Deliberately no detail from the parser: it could quote key material.
        raise KeyFileError(N_("Key file {path} is malformed."), path=str(path)) from None


_EXISTS = N_("Key file {path} already exists; refusing to overwrite it.")


def write_key_file(path: Path, ring: KeyRing, *, replace: bool) -> None:
    """Write ``ring`` to ``path`` atomically with mode 0600.

    ``replace=False`` refuses to overwrite an existing file: losing a KEK loses every message.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not replace and path.exists():
        raise KeyFileError(_EXISTS, path=str(path))
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, _encode(ring))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            # link() fails if the target appeared meanwhile, unlike rename().
            os.link(tmp, path)
            os.unlink(tmp)
    except FileExistsError:
        os.unlink(tmp)
        raise KeyFileError(_EXISTS, path=str(path)) from None
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_key_file(path: Path) -> KeyRing:
    """Load the KEKs; refuse a file that group or others could read or write."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(
            N_("Key file {path} does not exist; run 'chatd init' to create it."), path=str(path)
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(N_("Key file {path} is not a regular file."), path=str(path))
    if st.st_mode & 0o077:
        raise KeyFileError(
            N_(
                "Key file {path} is accessible to other users (mode {mode}); run 'chmod 600' on it."
            ),
            path=str(path),
            mode=f"{stat.S_IMODE(st.st_mode):o}",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(
            N_("Key file {path} cannot be read: {reason}."), path=str(path), reason=exc.strerror
        ) from None
    return _decode(raw, path)
