"""The cluster's background jobs (:class:`chatd.store.contract.ClusterJobs`): an open store
holds the lease of the jobs it asks for; a closed one holds none."""

from __future__ import annotations

from tests.store.conftest import StoreFactory


async def test_an_open_store_holds_its_jobs_and_a_closed_one_none(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory.open()
    assert await store.hold_lease("attachment_sweep")
    assert await store.hold_lease("attachment_sweep")  # asked again: still held
    assert await store.hold_lease("mailbox_sync")
    await store.close()
    assert not await store.hold_lease("attachment_sweep")
