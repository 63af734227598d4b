"""Delivery never depends on the broker: publications lost, repeated and reordered still give
every device every event it may see, exactly once and in seq order (the cursors fill gaps
from the store); session ends published through the broker close sockets at once."""

from __future__ import annotations

import random
from pathlib import Path

from chatd.broker.base import Committed, Publication
from chatd.gateway.protocol import CloseCode
from chatd.services.maintenance import os_operator
from tests.broker.wrapped import WrappedBroker
from tests.gateway.client import WsClient
from tests.gateway.inprocess import serving


class UnreliableBroker(WrappedBroker):
    """The in-memory broker behind a faulty network: while ``faulty``, each committed
    publication is dropped, delivered twice, or held back and delivered after the next one."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        self._held: list[Publication] = []
        self.faulty = True
        self.faults = {"dropped": 0, "repeated": 0, "reordered": 0}

    def publish(self, publication: Publication) -> None:
        if not self.faulty or not isinstance(publication, Committed):
            self._release()
            self._inner.publish(publication)
            return
        roll = self._rng.random()
        if roll < 0.25:
            self.faults["dropped"] += 1
        elif roll < 0.45:
            self.faults["repeated"] += 1
            self._inner.publish(publication)
            self._inner.publish(publication)
        elif roll < 0.65:
            self.faults["reordered"] += 1
            self._held.append(publication)
        else:
            self._inner.publish(publication)
            self._release()

    def _release(self) -> None:
        held, self._held = self._held, []
        for publication in reversed(held):
            self._inner.publish(publication)


async def test_lost_repeated_and_reordered_publications_still_deliver_exactly_once_in_order(
    tmp_path: Path,
) -> None:
    broker = UnreliableBroker(seed=20261201)
    async with serving(tmp_path, broker) as server:
        users = [await server.user(name) for name in ("Anne", "Bruno", "Chloé")]
        devices = [await WsClient.open(server.ws_url, token) for _, token in users]
        devices.append(await WsClient.open(server.ws_url, users[0][1]))  # Anne's second device
        try:
            for device in devices:
                await device.sync()
            ids = [user_id for user_id, _ in users]
            conv_all = await devices[0].create(ids, "Tous")
            conv_two = await devices[1].create(ids[:2], "À deux")
            for i in range(60):
                sender = devices[i % 3]
                conv = conv_all if i % 2 or sender is devices[2] else conv_two
                await sender.send(conv, f"message {i}")
            left = await devices[2].ok("leave", client_msg_id="leave-chloe", conv=conv_all)
            for i in range(10):
                await devices[0].send(conv_all, f"après le départ {i}")
            broker.faulty = False  # the last word goes through: any gap left is now seen
            last_all = (await devices[1].send(conv_all, "fin"))["last_seq"]
            last_two = (await devices[1].send(conv_two, "fin"))["last_seq"]
            assert all(broker.faults.values()), broker.faults  # every kind of fault happened
            # Chloé left: no later push reaches her, so a lost publication of her leave is
            # only found when her client resumes (what a client does after any doubt).
            held = max(devices[2].seqs(conv_all), default=0)
            await devices[2].sync({conv_all: held})
            expected = {conv_all: last_all, conv_two: last_two}
            for device in (devices[0], devices[1], devices[3]):
                for conv, last in expected.items():
                    await device.wait_seq(conv, last)
            for index, device in enumerate(devices):
                await device.flush()
                for conv in (conv_all, conv_two):
                    seqs = device.seqs(conv)
                    if index == 2:  # up to her leave, nothing after; never the other one
                        assert seqs == (
                            list(range(1, left["last_seq"] + 1)) if conv == conv_all else []
                        )
                    else:
                        assert seqs == list(range(1, expected[conv] + 1)), (index, conv)
        finally:
            for device in devices:
                await device.close()


async def test_an_account_disabled_through_the_services_is_closed_at_once(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as server:
        user_id, token = await server.user("Denise")
        other_id, other_token = await server.user("Émile")
        phone = await WsClient.open(server.ws_url, token)
        laptop = await WsClient.open(server.ws_url, token)
        bystander = await WsClient.open(server.ws_url, other_token)
        try:
            # The revocation sweep is stopped: only the broker's publication can close them.
            await server.gateway.revocation.stop()
            accounts = server.process.services.accounts
            user = await server.process.store.get_user(user_id)
            await accounts.set_disabled(user, True, by=os_operator())
            for device in (phone, laptop):
                code, _ = await device.wait_closed()
                assert code == CloseCode.USER_DISABLED
            await bystander.flush()  # the other account is untouched
            assert bystander.close_code is None and other_id != user_id
        finally:
            for device in (phone, laptop, bystander):
                await device.close()


class DeafBroker(WrappedBroker):
    """A broker that loses every committed batch (a NATS that never delivers): only the
    head poll (:mod:`chatd.gateway.head_poll`) can bring events to live sessions."""

    def publish(self, publication: Publication) -> None:
        if not isinstance(publication, Committed):
            self._inner.publish(publication)


POLL_BOUND_S = 30.0  # the promise is a poll a second; generous on a busy machine


async def test_events_the_broker_lost_reach_live_sessions_through_the_head_poll(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, DeafBroker()) as server:
        (_, anne_token), (bruno, bruno_token) = [
            await server.user(name) for name in ("Anne", "Bruno")
        ]
        sender = await WsClient.open(server.ws_url, anne_token)
        others = [
            await WsClient.open(server.ws_url, bruno_token),
            await WsClient.open(server.ws_url, anne_token),  # the sender's other device
        ]
        try:
            for device in (sender, *others):
                await device.sync()
            conv = await sender.create([bruno], "Sans courtier")
            for i in range(5):
                await sender.send(conv, f"message {i}")
            last = 7  # created, the creation's message, 5 messages
            looks = server.gateway.head_poll.looks
            for device in others:
                await device.wait_seq(conv, last, timeout=POLL_BOUND_S)
                await device.flush()
                assert device.seqs(conv) == list(range(1, last + 1))  # once each, in order
            assert server.gateway.head_poll.looks > looks
            assert server.gateway.fanout.caught_up >= 1
        finally:
            for device in (sender, *others):
                await device.close()
