"""Memory of image uploads: N concurrent 7000×7000 PNG uploads against a real ``chatd serve``.

Run:  .venv/bin/python -m bench.image_memory             (8 uploads, about 30 s)
      .venv/bin/python -m bench.image_memory --uploads 16 --side 7000

Each PNG is of one colour, so it is ~155 KiB on the wire and 49 megapixels once decoded:
the attack of issue 12, item 7.  One account per upload (so the
per-user upload limit does not refuse any).  The resident set size (``VmRSS`` in
``/proc/PID/status``) of the server process, and of the server with every process under it
(the image decoding workers), is sampled every 50 ms: before the uploads (after one small
upload, so that lazily started parts are running), the peak during the uploads, and after
them (the lowest sample in the ``--settle`` seconds after the last answer).  Results:
docs/performance.md, section Images.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

from bench.chaos_harness.server import ChaosServer, create_accounts

MIB = 1024 * 1024
SAMPLE_EVERY = 0.05


def big_png(side: int, seed: int = 0) -> bytes:
    """A ``side``×``side`` RGB PNG of one colour (a different one per seed): 7000×7000 is
    155 KiB on the wire, 49 megapixels once decoded."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200 - seed % 100, 210, 220)).save(out, "PNG", compress_level=9)
    return out.getvalue()


def small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(out, "PNG")
    return out.getvalue()


def status_kb(pid: int, field_name: str = "VmRSS") -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _parents() -> dict[int, list[int]]:
    """Every process's children, from the parent pid in ``/proc/PID/stat``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    return parents


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (children, grandchildren …)."""
    parents = _parents()
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def children(pid: int) -> list[int]:
    return _parents().get(pid, [])


def workers(pid: int) -> list[int]:
    """The image workers of the server ``pid``: the children of its children (the fork
    server's)."""
    parents = _parents()
    return [worker for child in parents.get(pid, []) for worker in parents.get(child, [])]


def tree_rss_kb(pid: int) -> int:
    return status_kb(pid) + sum(status_kb(child) for child in descendants(pid))


@dataclass
class Samples:
    pid: int
    server: list[int] = field(default_factory=list)
    tree: list[int] = field(default_factory=list)

    def take(self) -> None:
        self.server.append(status_kb(self.pid))
        self.tree.append(tree_rss_kb(self.pid))


async def sample(samples: Samples, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.to_thread(samples.take)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)


async def run(uploads: int, side: int, settle: float, extra: dict[str, str]) -> None:
    files = [big_png(side, i) for i in range(uploads)]
    print(f"{uploads} PNG of {side}×{side}, {sum(map(len, files)) / uploads / 1024:.0f} KiB each")
    with tempfile.TemporaryDirectory(prefix="chatd-images-") as tmp:
        server = ChaosServer(Path(tmp), extra)
        accounts = await create_accounts(server.data_dir, uploads)
        await server.start()
        try:
            base = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(base_url=base, timeout=600) as http:

                async def post(token: str, data: bytes) -> httpx.Response:
                    headers = {"Authorization": f"Bearer {token}", "X-File-Name": "scan.png"}
                    return await http.post("/v1/attachments", content=data, headers=headers)

                warm = await post(accounts[0].token, small_png())
                assert warm.status_code == 201, warm.text
                before = Samples(server.pid)
                before.take()
                during = Samples(server.pid)
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample(during, stop))
                started = time.monotonic()
                answers = await asyncio.gather(
                    *(post(a.token, data) for a, data in zip(accounts, files, strict=True))
                )
                took = time.monotonic() - started
                stop.set()
                await sampler
                after = Samples(server.pid)
                settle_until = time.monotonic() + settle
                while time.monotonic() < settle_until:
                    after.take()
                    await asyncio.sleep(SAMPLE_EVERY)
            codes: dict[int, int] = {}
            for answer in answers:
                codes[answer.status_code] = codes.get(answer.status_code, 0) + 1
            print(f"answers: {codes} in {took:.1f} s")
            for answer in answers:
                if answer.status_code != 201:
                    print("refused:", answer.text)
                    break
            print(f"{'RSS (MiB)':<28}{'server':>10}{'server + workers':>20}")
            rows = [
                ("before", before.server[0], before.tree[0]),
                ("peak during", max(during.server), max(during.tree)),
                (f"after (lowest in {settle:g} s)", min(after.server), min(after.tree)),
            ]
            for name, own, tree in rows:
                print(f"{name:<28}{own / 1024:>10.0f}{tree / 1024:>20.0f}")
        finally:
            code = await server.stop()
            for line in server.log_path.read_text().splitlines():
                if "WARNING" in line or "ERROR" in line or "Traceback" in line:
                    print("log:", line[:300])
            print(f"server stopped with exit code {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--side", type=int, default=7000)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument(
        "--env", action="append", default=[], help="CHATD_NAME=value for the server"
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    asyncio.run(run(args.uploads, args.side, args.settle, extra))


if __name__ == "__main__":
    main()
