"""The package's layout holds: no import cycle anywhere in ``chatd`` (function-level imports
count too: a cycle hidden in a function is still a cycle), and the pure modules stay pure."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for path in (ROOT / "chatd").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chatd"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("chatd")}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start → … → start, if there is one."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph[node]):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_chatd_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    cycles = [c for m in sorted(graph) if (c := cycle_through(graph, m)) is not None]
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


# Every module of the core, whatever is added to it later, and the gateway's protocol rules.
PURE_MODULES = (
    *sorted(
        f"chatd.core.{info.name}" for info in pkgutil.iter_modules([str(ROOT / "chatd" / "core")])
    ),
    "chatd.i18n",
    "chatd.gateway.protocol",
    "chatd.gateway.session",
    "chatd.gateway.admission",
    "chatd.gateway.budget",
)
FORBIDDEN = ("aiosqlite", "sqlite3", "cryptography", "asyncio")


def test_the_pure_modules_load_no_driver_no_crypto_no_asyncio() -> None:
    """Rules and protocol decisions are plain code: importing them loads neither the database
    driver nor the crypto library nor asyncio (checked in a fresh interpreter)."""
    probe = (
        "import sys\n"
        f"for name in {PURE_MODULES!r}: __import__(name)\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "", f"loaded by the pure modules: {done.stdout.strip()}"
