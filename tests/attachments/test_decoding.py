"""Images decoded in real worker processes (chatd/attachments/decoding.py): the same result
as in-process, refusals that keep their fields, the budget, a dead worker, a halt.

The crash and memory attacks through a real server are in tests/gateway/test_image_decoding.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import time
from pathlib import Path

import pytest
from PIL import Image

from bench.image_memory import children
from chatd.attachments.decoding import ImageDecoders
from chatd.attachments.images import ImageLimits, probe_image, process_image
from chatd.attachments.kinds import FileKind
from chatd.core.errors import CorruptFile, ImageProcessingFailed, ImageTooLarge, UnavailableError
from tests.attachments import samples

LIMITS = ImageLimits()
BOUND = 60.0  # seconds: generous, the machine may be busy


def spooled(tmp_path: Path, data: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def big_png(side: int = 6000) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (90, 120, 150)).save(out, "PNG", compress_level=9)
    return out.getvalue()


@pytest.fixture
async def decoders() -> ImageDecoders:
    pool = ImageDecoders(workers=2, budget_pixels=40_000_000)
    await asyncio.to_thread(pool.start)
    yield pool  # type: ignore[misc]
    await pool.stop()


async def running_worker(pool: ImageDecoders) -> int:
    deadline = time.monotonic() + BOUND
    while not pool.running_pids():
        assert time.monotonic() < deadline, "no worker started"
        await asyncio.sleep(0.01)  # polling for a process to appear, not ordering the test
    return pool.running_pids()[0]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_a_worker_gives_what_the_server_process_would(
    decoders: ImageDecoders, tmp_path: Path
) -> None:
    for kind, data in [
        (FileKind.JPEG, samples.jpeg_with_gps(orientation=6)),
        (FileKind.PNG, samples.png_with_metadata()),
        (FileKind.GIF, samples.gif(frames=3)),
    ]:
        path = spooled(tmp_path, data, kind.value)
        here = process_image(path, kind, LIMITS)
        there = await decoders.process(path, kind, LIMITS)
        assert there == here
    assert decoders.running_pids() == []


async def test_a_refusal_crosses_the_process_with_its_fields(
    decoders: ImageDecoders, tmp_path: Path
) -> None:
    path = spooled(tmp_path, samples.png_declaring(10_000, 8_000))
    with pytest.raises(ImageTooLarge) as refused:
        await decoders.process(path, FileKind.PNG, LIMITS)
    assert (refused.value.details["width"], refused.value.details["megapixels"]) == (10_000, 50)
    assert "au plus 50 mégapixels" in refused.value.message_in("fr")
    damaged = spooled(tmp_path, samples.png_with_metadata()[:-30], "damaged")
    with pytest.raises(CorruptFile):
        await decoders.process(damaged, FileKind.PNG, LIMITS)


async def test_an_image_heavier_than_the_whole_budget_is_refused_before_decoding(
    tmp_path: Path,
) -> None:
    pool = ImageDecoders(workers=1, budget_pixels=1_000_000)
    try:
        path = spooled(tmp_path, samples.png_declaring(2000, 1000))  # header only: no pixels
        with pytest.raises(ImageTooLarge) as refused:
            await pool.process(path, FileKind.PNG, LIMITS)
        assert refused.value.details["megapixels"] == 1
        assert pool.budget.in_use == 0
    finally:
        await pool.stop()


def test_the_header_declares_the_weight() -> None:
    still = probe_image(samples.png_with_metadata(), FileKind.PNG)
    assert (still.animated, still.weight) == (False, still.width * still.height)
    animation = probe_image(samples.gif(frames=3), FileKind.GIF, LIMITS)
    assert animation.animated
    assert animation.weight == animation.width * animation.height * LIMITS.max_frames
    with pytest.raises(ImageTooLarge):
        probe_image(samples.png_declaring(10_000, 8_000), FileKind.PNG)


async def test_a_dead_worker_fails_its_image_only(decoders: ImageDecoders, tmp_path: Path) -> None:
    big = spooled(tmp_path, big_png(), "big.png")
    doomed = asyncio.create_task(decoders.process(big, FileKind.PNG, LIMITS))
    pid = await running_worker(decoders)
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    with pytest.raises(ImageProcessingFailed) as failed:
        await asyncio.wait_for(doomed, BOUND)
    assert "n'a pas pu être traitée" in failed.value.message_in("fr")
    assert gone(pid)
    assert decoders.budget.in_use == 0 and decoders.running_pids() == []
    again = await asyncio.wait_for(decoders.process(big, FileKind.PNG, LIMITS), BOUND)
    assert (again.width, again.height) == (6000, 6000)


async def test_a_halt_ends_the_decodings_in_flight(tmp_path: Path) -> None:
    pool = ImageDecoders(workers=2, budget_pixels=40_000_000)
    big = spooled(tmp_path, big_png(), "big.png")
    decoding = asyncio.create_task(pool.process(big, FileKind.PNG, LIMITS))
    pid = await running_worker(pool)
    await asyncio.wait_for(pool.stop(), BOUND)
    with pytest.raises(UnavailableError):
        await asyncio.wait_for(decoding, BOUND)
    assert gone(pid) and pool.running_pids() == []
    with pytest.raises(UnavailableError):  # and no new one starts
        await pool.process(big, FileKind.PNG, LIMITS)


def test_a_jpeg_thumbnail_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    import chatd.attachments.images as images

    seen: list[tuple[int, int]] = []
    real = images._thumbnail

    def spy(img: Image.Image, limits: ImageLimits) -> tuple[bytes, int, int]:
        seen.append(img.size)
        return real(img, limits)

    monkeypatch.setattr(images, "_thumbnail", spy)
    photo = io.BytesIO()
    samples.two_colour((4000, 3000)).save(photo, "JPEG", quality=90)
    out = process_image(photo.getvalue(), FileKind.JPEG)
    assert (out.width, out.height) == (4000, 3000)  # the stored image is full size
    assert seen == [(500, 375)]  # the thumbnail's decode: 1/8 of each side (draft)
    assert (out.thumbnail_width, out.thumbnail_height) == (320, 240)


async def test_a_dead_fork_server_is_started_again(decoders: ImageDecoders, tmp_path: Path) -> None:
    def fork_servers() -> list[int]:
        found = []
        for pid in children(os.getpid()):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"multiprocessing.forkserver" in cmdline.read() and not gone(pid):
                    found.append(pid)
        return found

    (server,) = fork_servers()
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + BOUND
    while not gone(server):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)  # polling for the kill to land, not ordering the test
    path = spooled(tmp_path, samples.png_with_metadata())
    out = await asyncio.wait_for(decoders.process(path, FileKind.PNG, LIMITS), BOUND)
    assert out.kind is FileKind.PNG
    assert fork_servers() and server not in fork_servers()
