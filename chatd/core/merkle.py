"""A Merkle tree over an ordered list of leaves, kept up to date as leaves change or are added.

A checkpoint (:mod:`chatd.core.checkpoints`) commits to the heads of every chain at once by
this tree's root.  The tree is rebuilt from scratch by ``chatd verify`` and kept incrementally
by the server, which changes a few leaves per checkpoint among possibly many chains: an
update or an append recomputes one path, ``O(log n)`` hashes, not the ``n`` of a rebuild.

Shape: leaves are paired left to right at each level, ``(0, 1), (2, 3), …``; an odd last node
is carried up unchanged (never duplicated: duplicating it would let two different lists share
a root).  Hashes are domain-separated as in RFC 9162 (``0x00`` before a leaf, ``0x01`` before
two children), so a leaf can never pass for an inner node.  A list of leaves and its length
determine the root; the checkpoint records the length beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _parent_level(level: list[bytes]) -> list[bytes]:
    parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """The root over ``leaves`` in their order, from scratch."""
    level = [leaf_hash(leaf) for leaf in leaves]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


class IncrementalMerkle:
    """The same root as :func:`merkle_root`, with every level kept for cheap updates."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[leaf_hash(leaf) for leaf in leaves]]
        while len(self._levels[-1]) > 1:
            self._levels.append(_parent_level(self._levels[-1]))

    def copy(self) -> IncrementalMerkle:
        """An independent tree with the same leaves (copies references: no hashing)."""
        twin = IncrementalMerkle()
        twin._levels = [list(level) for level in self._levels]
        return twin

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        top = self._levels[-1]
        return top[0] if top else EMPTY_ROOT

    def set(self, index: int, leaf: bytes) -> None:
        """Replace leaf ``index`` (``index == len(self)`` appends one)."""
        if not 0 <= index <= len(self):
            raise IndexError(index)
        if index == len(self):
            self._levels[0].append(b"")
        self._levels[0][index] = leaf_hash(leaf)
        self._update_path(index)

    def _update_path(self, index: int) -> None:
        depth = 0
        while len(self._levels[depth]) > 1:
            level = self._levels[depth]
            if depth + 1 == len(self._levels):
                self._levels.append([])
            parents = self._levels[depth + 1]
            parent = index // 2
            left = parent * 2
            value = (
                node_hash(level[left], level[left + 1]) if left + 1 < len(level) else level[left]
            )
            if parent == len(parents):
                parents.append(value)
            else:
                parents[parent] = value
            # An append can make the node before the last one gain a sibling: a level whose
            # length grew from odd to even changed its last pair, which is this path anyway.
            index, depth = parent, depth + 1
        del self._levels[depth + 1 :]
