"""The services of one process, built once over one store and one broker."""

from __future__ import annotations

from dataclasses import dataclass

from chatd.broker.base import Broker
from chatd.core.login_throttle import ThrottleLimits
from chatd.services.accounts import AccountAdmin
from chatd.services.auth import AuthService
from chatd.services.directory import Directory
from chatd.services.inbox import Inbox
from chatd.services.maintenance import Maintenance
from chatd.services.messaging import Messaging
from chatd.services.reading import Reading
from chatd.services.sessions import Sessions
from chatd.store.contract import Store


@dataclass(frozen=True, slots=True)
class Services:
    broker: Broker
    messaging: Messaging
    reading: Reading
    inbox: Inbox
    auth: AuthService
    accounts: AccountAdmin
    directory: Directory
    maintenance: Maintenance
    sessions: Sessions

    @classmethod
    def build(
        cls,
        store: Store,
        broker: Broker,
        *,
        session_hours: int,
        terms_version: str,
        login_limits: ThrottleLimits | None = None,
    ) -> Services:
        return cls(
            broker=broker,
            messaging=Messaging(store, broker),
            reading=Reading(store),
            inbox=Inbox(store, broker),
            auth=AuthService(
                store,
                broker,
                session_hours=session_hours,
                terms_version=terms_version,
                login_limits=login_limits,
            ),
            accounts=AccountAdmin(store, broker),
            directory=Directory(store, store),
            maintenance=Maintenance(store),
            sessions=Sessions(store, broker),
        )
