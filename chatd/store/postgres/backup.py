"""PostgreSQL's own tools for a backup: ``pg_dump`` (one snapshot of the database, in its
custom format) and ``pg_restore`` (into an empty database, in one transaction).

They are found on ``PATH`` (PostgreSQL's client tools, of the server's major version or
newer).  The password of the database URL is given to them in their environment
(``PGPASSWORD``), never on their command line, where every user of the machine could read it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from chatd.core.errors import BackupError
from chatd.i18n import N_

NO_TOOL = N_(
    "{tool} is not installed (PostgreSQL's client tools): install them, of the server's"
    " version or newer, then try again"
)
TOOL_FAILED = N_("{tool} failed: {reason}")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(NO_TOOL, tool=name)
    return found


def _without_password(dsn: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that gives it to the tool."""
    parts = urlsplit(dsn)
    env = dict(os.environ)
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)  # a URL holds it percent-encoded
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}@{host}{port}" if user else f"{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env


async def _run(tool: str, *args: str, dsn: str) -> None:
    url, env = _without_password(dsn)
    process = await asyncio.create_subprocess_exec(
        _tool(tool),
        f"--dbname={url}",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        # The tool's own words, first line: they name objects, never row contents.
        reason = (err.decode("utf-8", "replace").strip().splitlines() or ["?"])[0]
        raise BackupError(TOOL_FAILED, tool=tool, reason=reason[:300])


async def dump(dsn: str, target: Path) -> None:
    """One snapshot of the whole database into ``target`` (custom format), via a temporary
    name so that a failure never leaves a half dump under the final one."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    await _run("pg_dump", "--format=custom", "--no-owner", f"--file={partial}", dsn=dsn)
    os.replace(partial, target)


async def restore(dsn: str, source: Path) -> None:
    """Load ``source`` into the (empty) database of ``dsn``, all or nothing: the tables,
    their rows, then the indexes and the append-only triggers (which therefore do not fire
    on the rows restored)."""
    await _run(
        "pg_restore",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        str(source),
        dsn=dsn,
    )
