"""The Merkle tree of checkpoints: the incremental tree always has the root of a rebuild."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core.merkle import EMPTY_ROOT, IncrementalMerkle, leaf_hash, merkle_root, node_hash

LEAF = st.binary(min_size=0, max_size=12)


def test_small_trees_have_the_documented_shape() -> None:
    a, b, c = b"a", b"b", b"c"
    assert merkle_root([]) == EMPTY_ROOT
    assert merkle_root([a]) == leaf_hash(a)
    assert merkle_root([a, b]) == node_hash(leaf_hash(a), leaf_hash(b))
    # An odd last node is carried up, never paired with itself.
    assert merkle_root([a, b, c]) == node_hash(node_hash(leaf_hash(a), leaf_hash(b)), leaf_hash(c))
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])


def test_a_leaf_never_passes_for_an_inner_node() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert merkle_root([a + b]) != merkle_root([b"a", b"b"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(LEAF, max_size=40),
    st.lists(st.tuples(st.integers(min_value=0, max_value=60), LEAF), max_size=40),
)
def test_updates_and_appends_keep_the_root_of_a_rebuild(
    start: list[bytes], changes: list[tuple[int, bytes]]
) -> None:
    tree = IncrementalMerkle(start)
    leaves = list(start)
    assert tree.root == merkle_root(leaves)
    for index, value in changes:
        index = min(index, len(leaves))  # an index past the end appends
        if index == len(leaves):
            leaves.append(value)
        else:
            leaves[index] = value
        tree.set(index, value)
        assert tree.root == merkle_root(leaves)
        assert len(tree) == len(leaves)
    twin = tree.copy()
    twin.set(len(leaves), b"more")
    assert tree.root == merkle_root(leaves)  # the copy is independent


@settings(max_examples=200, deadline=None)
@given(st.lists(LEAF, min_size=1, max_size=20), st.data())
def test_changing_any_leaf_changes_the_root(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    other = data.draw(LEAF.filter(lambda v: v != leaves[index]))
    changed = [*leaves[:index], other, *leaves[index + 1 :]]
    assert merkle_root(changed) != merkle_root(leaves)
