"""SCAFFOLD: the PostgreSQL users part, to be written (mirrors chatd/store/sqlite/users.py)."""

from __future__ import annotations

from typing import Any


async def ensure_directory_key_txn(conn: aiosqlite.Connection, keys: DataKeys, now: int) -> int:
    raise NotImplementedError("postgres users.ensure_directory_key_txn")


async def _check_user_txn(conn: aiosqlite.Connection, user_id: int) -> None:
    raise NotImplementedError("postgres users._check_user_txn")


class PostgresUsers:
    def __init__(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx

    async def open_directory(self) -> None:
        raise NotImplementedError("postgres users.open_directory")

    @property
    def directory_version(self) -> int:
        raise NotImplementedError("postgres users.directory_version")

    def _user(self, row: Any) -> User:
        raise NotImplementedError("postgres users._user")

    async def create_user(self, new: NewUser, *, audit: AdminAction | None = None) -> User:
        raise NotImplementedError("postgres users.create_user")

    async def get_user(self, user_id: int) -> User:
        raise NotImplementedError("postgres users.get_user")

    async def find_user_by_login(self, login: str) -> User | None:
        raise NotImplementedError("postgres users.find_user_by_login")

    async def list_users(self) -> list[User]:
        raise NotImplementedError("postgres users.list_users")

    async def _update_user(
        self, name: str, changes: dict[str, Any], user_id: int, audit: AdminAction | None = None
    ) -> User:
        raise NotImplementedError("postgres users._update_user")

    async def set_user_disabled(
        self, user_id: int, disabled: bool, *, audit: AdminAction | None = None
    ) -> User:
        raise NotImplementedError("postgres users.set_user_disabled")

    async def set_user_language(self, user_id: int, language: str | None) -> User:
        raise NotImplementedError("postgres users.set_user_language")

    async def set_terms_accepted(self, user_id: int, terms_version: str) -> User:
        raise NotImplementedError("postgres users.set_terms_accepted")

    async def change_password(
        self,
        user_id: int,
        password_hash: str,
        *,
        expected_hash: str,
        keep_token: bytes,
        now_ms: int,
    ) -> list[bytes]:
        raise NotImplementedError("postgres users.change_password")

    async def reset_password(
        self, user_id: int, password_hash: str, *, now_ms: int, audit: AdminAction | None = None
    ) -> int:
        raise NotImplementedError("postgres users.reset_password")
