"""Images: decode under a pixel limit, re-encode without any metadata, make a thumbnail.

Only the re-encoded image is ever stored, so nothing the camera or the sender's phone wrote
(GPS position, device, dates, XMP, comments, embedded thumbnails) survives.  The choices:

=========  =============================================================================
source     stored as
=========  =============================================================================
JPEG       JPEG, quality 90 (an MPO, i.e. a multi-picture JPEG, keeps its first picture)
HEIC       JPEG, quality 90 (every client can show it; primary image only, no depth maps),
           if pillow-heif is installed; refused (``heic_unavailable``) otherwise
PNG        PNG, lossless, same mode (16-bit grey stays 16-bit: medical images); animated
           PNG stays animated
GIF        GIF; an animated GIF stays animated (frames, durations and loop kept)
WebP       WebP, lossless if the source is lossless, else quality 90; animation kept
=========  =============================================================================

* Orientation: the EXIF orientation is applied to the pixels (as ``ImageOps.exif_transpose``
  does, and to every frame of an animation), then dropped with the rest of the EXIF.  HEIC
  rotations are applied by libheif when decoding.
* Colour: an embedded ICC profile other than sRGB is converted to sRGB, then dropped; the
  output carries no profile (viewers assume sRGB).  A broken profile is ignored.
* Limits: at most ``max_pixels`` (50 megapixels) per image, checked from the header before
  anything is decoded; animations at most ``max_frames`` frames and ``max_animation_pixels``
  decoded pixels in all (frames are held in memory to be re-encoded).  Pillow's own
  decompression-bomb check stays on behind ours (``max_pixels`` may not exceed it), and a
  ``DecompressionBombWarning`` turned into an exception is refused like the error.
* Thumbnail: the first frame, at most 320 px on its longer side, JPEG quality 80 on white.
  A JPEG's thumbnail is decoded a second time at reduced scale (``Image.draft``: the JPEG
  decoder's DCT scaling, 1/2 to 1/8), after the full image was encoded and let go.
* Memory: :func:`probe_image` reads the size from the header only, so that the caller can
  reserve the decode's memory (:mod:`.budget`) before :func:`process_image` decodes; the
  decoding itself runs in a worker process (:mod:`.decoding`).  No full-size copy is made
  for encoding or for the thumbnail.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageCms, ImageSequence

from chatd.attachments.kinds import FileKind
from chatd.core.errors import ChatdError, CorruptFile, ImageTooLarge, UnsupportedFileType
from chatd.i18n import N_

# HEIC through libheif.  pillow-heif's binary wheels are GPLv2 (they bundle x265), so the
# dependency may have to go: without it HEIC uploads are refused with a clear sentence.
try:
    import pillow_heif
except ImportError:  # pragma: no cover - exercised by monkeypatching HEIC_SUPPORTED
    HEIC_SUPPORTED = False
else:
    HEIC_SUPPORTED = True
    # We never want its embedded thumbnails, depth maps or auxiliary images.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

_PIL_FORMATS: dict[FileKind, tuple[str, set[str]]] = {
    FileKind.JPEG: ("JPEG", {"JPEG", "MPO"}),
    FileKind.PNG: ("PNG", {"PNG"}),
    FileKind.GIF: ("GIF", {"GIF"}),
    FileKind.WEBP: ("WEBP", {"WEBP"}),
    FileKind.HEIC: ("HEIF", {"HEIF"}),
}
_OUTPUT = {
    FileKind.JPEG: FileKind.JPEG,
    FileKind.HEIC: FileKind.JPEG,
    FileKind.PNG: FileKind.PNG,
    FileKind.GIF: FileKind.GIF,
    FileKind.WEBP: FileKind.WEBP,
}
_ANIMATABLE = {FileKind.PNG, FileKind.GIF, FileKind.WEBP}
_PNG_MODES = {"1", "L", "LA", "RGB", "RGBA", "P", "I;16", "I"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 50_000_000
    max_frames: int = 300
    max_animation_pixels: int = 25_000_000
    thumbnail_px: int = 320
    quality: int = 90
    thumbnail_quality: int = 80

    def __post_init__(self) -> None:
        bomb_limit = Image.MAX_IMAGE_PIXELS
        if bomb_limit is not None and self.max_pixels > bomb_limit:
            raise ValueError(f"max_pixels may not exceed Pillow's limit ({bomb_limit})")


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes
    kind: FileKind  # the format of ``data``
    width: int
    height: int
    frames: int
    thumbnail: bytes  # JPEG
    thumbnail_width: int
    thumbnail_height: int


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an image declares, before anything is decoded."""

    width: int
    height: int
    animated: bool
    weight: int  # pixels its decoding may hold at once: what it costs of the budget


@contextmanager
def _binary(source: Path | bytes | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, Path):
        with source.open("rb") as fp:
            yield fp
    elif isinstance(source, bytes):
        yield io.BytesIO(source)
    else:
        source.seek(0)
        yield source


def _unreadable() -> CorruptFile:
    return CorruptFile(N_("This image is damaged and cannot be read."), reason="image")


def open_image(fp: BinaryIO, kind: FileKind) -> Image.Image:
    """Open (not yet decode) ``fp`` with the one Pillow plugin ``kind`` calls for.

    Raises CorruptFile if Pillow does not recognise it as that format, ImageTooLarge if
    Pillow's own bomb check fires on the declared size.
    """
    if kind is FileKind.HEIC and not HEIC_SUPPORTED:
        raise UnsupportedFileType(
            N_("HEIC photos are not accepted by this server; send the photo as JPEG."),
            reason="heic_unavailable",
        )
    plugin, accepted = _PIL_FORMATS[kind]
    fp.seek(0)
    try:
        img = Image.open(fp, formats=[plugin])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(reason="pixels") from None
    except Exception:  # any parser failure on hostile input is the file's fault
        raise _unreadable() from None
    if img.format not in accepted:
        img.close()
        raise _unreadable()
    return img


def too_many_pixels(width: int, height: int, max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(
        N_(
            "This image has {width} × {height} pixels; at most {megapixels} megapixels"
            " are accepted."
        ),
        reason="pixels",
        width=width,
        height=height,
        megapixels=max_pixels // 1_000_000,
    )


def too_long_animation() -> ImageTooLarge:
    return ImageTooLarge(
        N_("This animation is too long or too large to be processed."), reason="frames"
    )


def _check_pixels(img: Image.Image, limits: ImageLimits) -> None:
    width, height = img.size
    if width < 1 or height < 1:
        raise _unreadable()
    if width * height > limits.max_pixels:
        raise too_many_pixels(width, height, limits.max_pixels)


def probe_image(
    source: Path | bytes | BinaryIO, kind: FileKind, limits: ImageLimits | None = None
) -> ImageHeader:
    """The declared size of one image of ``kind``, from its header; the same refusals as
    :func:`process_image` for a size over the limits (ImageTooLarge) or an unreadable header
    (CorruptFile).  An animation weighs what its frames may hold, at most
    ``max_animation_pixels`` (its decoding stops beyond)."""
    limits = limits or ImageLimits()
    with _binary(source) as fp, open_image(fp, kind) as img:
        _check_pixels(img, limits)
        try:
            animated = kind in _ANIMATABLE and bool(getattr(img, "is_animated", False))
        except Exception:  # a damaged second frame header
            raise _unreadable() from None
        width, height = img.size
    weight = width * height
    if animated:
        weight = max(weight, min(limits.max_animation_pixels, weight * limits.max_frames))
    return ImageHeader(width, height, animated, weight)


def _transpose_method(img: Image.Image) -> Image.Transpose | None:
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # unreadable EXIF: no orientation
        return None
    return {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if img.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(profile).lower():
            return img
        mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, profile, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img  # a broken profile: keep the pixels as they are, drop the profile
    return converted if converted is not None else img


def _flatten(img: Image.Image) -> Image.Image:
    """RGB or L, alpha composited on white (for JPEG output and thumbnails)."""
    if img.mode in ("RGB", "L"):
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if img.mode == "1":
        return img.convert("L")
    if "A" in img.mode or img.mode == "P" or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _encode(img: Image.Image, kind: FileKind, limits: ImageLimits, **params: Any) -> bytes:
    """Save with nothing from ``img.info``: Pillow copies comments, ICC and EXIF from there."""
    transparency = img.info.get("transparency")
    img.info = {}
    if transparency is not None and kind in (FileKind.PNG, FileKind.GIF):
        params["transparency"] = transparency
    out = io.BytesIO()
    if kind is FileKind.JPEG:
        img.save(out, "JPEG", quality=limits.quality, optimize=True, **params)
    elif kind is FileKind.PNG:
        img.save(out, "PNG", compress_level=6, **params)
    elif kind is FileKind.GIF:
        img.save(out, "GIF", **params)
    else:
        params.setdefault("quality", limits.quality)
        img.save(out, "WEBP", method=4, **params)
    return out.getvalue()


def _still(img: Image.Image, kind: FileKind, out_kind: FileKind) -> Image.Image:
    icc = img.info.get("icc_profile")
    method = _transpose_method(img)
    img.load()
    frame: Image.Image = img.transpose(method) if method is not None else img
    frame = _to_srgb(frame, icc)
    if out_kind is FileKind.JPEG:
        return _flatten(frame)
    if out_kind is FileKind.PNG and frame.mode not in _PNG_MODES:
        return frame.convert("RGBA" if "A" in frame.mode else "RGB")
    if out_kind is FileKind.WEBP and frame.mode not in ("RGB", "RGBA"):
        return frame.convert("RGBA" if frame.has_transparency_data else "RGB")
    return frame


def _frames(img: Image.Image, limits: ImageLimits) -> tuple[list[Image.Image], list[int]]:
    method = _transpose_method(img)
    icc = img.info.get("icc_profile")
    width, height = img.size
    frames: list[Image.Image] = []
    durations: list[int] = []
    for index, frame in enumerate(ImageSequence.Iterator(img)):
        if index >= limits.max_frames or (index + 1) * width * height > (
            limits.max_animation_pixels
        ):
            raise too_long_animation()
        durations.append(int(frame.info.get("duration", 100) or 100))
        rgba = _to_srgb(frame.convert("RGBA"), icc)
        frames.append(rgba.transpose(method) if method is not None else rgba)
    for frame in frames:
        frame.info = {}
    return frames, durations


def thumbnail_size(width: int, height: int, side: int) -> tuple[int, int]:
    """Within ``side`` × ``side``, the aspect ratio kept, never enlarged, never 0."""
    longer = max(width, height)
    if longer <= side:
        return width, height
    return max(1, round(width * side / longer)), max(1, round(height * side / longer))


def _thumbnail(img: Image.Image, limits: ImageLimits) -> tuple[bytes, int, int]:
    # resize() makes the small image straight from the large one (reducing by whole factors
    # first): no full-size copy, unlike thumbnail() on a copy.
    size = thumbnail_size(img.width, img.height, limits.thumbnail_px)
    small = (
        img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
        if size != img.size
        else img.copy()
    )
    thumb = _flatten(small)
    thumb.info = {}
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=limits.thumbnail_quality, optimize=True)
    return out.getvalue(), thumb.width, thumb.height


def _is_lossless_webp(fp: BinaryIO) -> bool:
    """Whether the first image data of a WebP (simple, extended or animated) is VP8L."""
    fp.seek(12)
    for _ in range(64):  # VP8X, ICCP, ANIM, EXIF … come before the image data
        header = fp.read(8)
        if len(header) < 8:
            return False
        kind, size = header[:4], int.from_bytes(header[4:], "little")
        if kind == b"ANMF":
            fp.seek(16, 1)  # frame position, size, duration and flags; then its image chunks
            return fp.read(4) == b"VP8L"
        if kind in (b"VP8L", b"VP8 ", b"ALPH"):
            return kind == b"VP8L"
        fp.seek(size + (size & 1), 1)
    return False


@contextmanager
def _decoding() -> Iterator[None]:
    """Any failure while decoding or encoding hostile input is the file's fault."""
    try:
        yield
    except ChatdError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(reason="pixels") from None
    except Exception:  # truncated data, bad LZW/zlib/JPEG stream …
        raise _unreadable() from None


def process_image(
    source: Path | bytes | BinaryIO, kind: FileKind, limits: ImageLimits | None = None
) -> ProcessedImage:
    """Decode, orient, strip and re-encode one image of ``kind``; make its thumbnail."""
    limits = limits or ImageLimits()
    out_kind = _OUTPUT[kind]
    if not isinstance(source, (Path, bytes)):
        source.seek(0)
        source = source.read()  # read twice for a JPEG; Pillow may close it (MPO)
    thumbnail: tuple[bytes, int, int] | None = None
    with _binary(source) as fp:
        lossless = kind is FileKind.WEBP and _is_lossless_webp(fp)
        with open_image(fp, kind) as img:
            _check_pixels(img, limits)
            animated = kind in _ANIMATABLE and bool(getattr(img, "is_animated", False))
            with _decoding():
                if animated:
                    frames, durations = _frames(img, limits)
                    first = frames[0]
                    data = _encode(
                        first,
                        out_kind,
                        limits,
                        save_all=True,
                        append_images=frames[1:],
                        duration=durations,
                        loop=int(img.info.get("loop", 0) or 0),
                        **({"lossless": True} if lossless else {}),
                    )
                    thumbnail = _thumbnail(first, limits)
                    (width, height), count = first.size, len(frames)
                    del frames, first
                else:
                    still = _still(img, kind, out_kind)
                    (width, height), count = still.size, 1
                    if kind is not FileKind.JPEG:
                        # The thumbnail first: encoding drops ``info`` (transparency).
                        thumbnail = _thumbnail(still, limits)
                    params: dict[str, Any] = {"lossless": True} if lossless else {}
                    data = _encode(still, out_kind, limits, **params)
                    del still
    if thumbnail is None:  # a JPEG: the full image is let go before its thumbnail's decode
        with _binary(source) as fp, _decoding():
            thumbnail = _jpeg_thumbnail(fp, kind, limits)
    return ProcessedImage(data, out_kind, width, height, count, *thumbnail)


def _jpeg_thumbnail(fp: BinaryIO, kind: FileKind, limits: ImageLimits) -> tuple[bytes, int, int]:
    """The thumbnail of a JPEG, decoded again at the smallest DCT scale that still covers
    it (``draft``): a 12-megapixel photo is decoded at 1/8, about 190,000 pixels."""
    side = limits.thumbnail_px
    with open_image(fp, kind) as img:
        img.draft(None, (side, side))
        return _thumbnail(_still(img, kind, FileKind.JPEG), limits)
