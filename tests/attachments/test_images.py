"""Images are decoded under limits and re-encoded with no metadata at all."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms, ImageOps, ImageSequence

from chatd.attachments.images import ImageLimits, ProcessedImage, process_image
from chatd.attachments.kinds import FileKind
from chatd.core.errors import CorruptFile, ImageTooLarge
from tests.attachments import samples

# Pillow warns between its limit and twice it; make sure that warning can never slip by.
pytestmark = pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")

RED, BLUE = (255, 0, 0), (0, 0, 255)
JPEG_APP0, JPEG_APP1, JPEG_APP2, JPEG_COM = 0xE0, 0xE1, 0xE2, 0xFE


def near(pixel: object, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def assert_clean_jpeg(data: bytes) -> None:
    markers = samples.jpeg_markers(data)
    assert not {JPEG_APP1, JPEG_APP2, JPEG_COM, 0xED} & set(markers), markers
    assert not [m for m in markers if 0xE3 <= m <= 0xEF]
    img = Image.open(io.BytesIO(data))
    assert len(img.getexif()) == 0
    assert not {"exif", "xmp", "icc_profile", "comment"} & img.info.keys()
    assert samples.SECRET not in data and b"PhoneMaker" not in data


def test_jpeg_with_gps_loses_all_exif_and_is_rotated() -> None:
    source = samples.jpeg_with_gps(orientation=6)
    before = Image.open(io.BytesIO(source))
    assert before.getexif().get_ifd(0x8825)  # the GPS block is really there
    assert before.size == (40, 20)

    out = process_image(source, FileKind.JPEG)
    assert out.kind is FileKind.JPEG
    assert_clean_jpeg(out.data)
    assert_clean_jpeg(out.thumbnail)
    after = Image.open(io.BytesIO(out.data))
    assert after.format == "JPEG"
    # Orientation 6 = turn 90° clockwise: the left (red) half is now on top.
    assert (out.width, out.height) == after.size == (20, 40)
    assert near(after.getpixel((10, 5)), RED) and near(after.getpixel((10, 35)), BLUE)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    source = samples.jpeg_with_gps(orientation=orientation)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(source)))
    assert expected is not None
    after = Image.open(io.BytesIO(process_image(source, FileKind.JPEG).data))
    assert after.size == expected.size
    for xy in [(2, 2), (after.width - 3, after.height - 3), (2, after.height - 3)]:
        assert near(after.getpixel(xy), expected.getpixel(xy)), (orientation, xy)


def test_mpo_keeps_its_first_picture_as_plain_jpeg() -> None:
    out_buf = io.BytesIO()
    first, second = samples.two_colour(), Image.new("RGB", (40, 20), (0, 255, 0))
    first.save(out_buf, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(out_buf.getvalue())).format == "MPO"
    out = process_image(out_buf.getvalue(), FileKind.JPEG)
    img = Image.open(io.BytesIO(out.data))
    assert (img.format, out.frames, getattr(img, "n_frames", 1)) == ("JPEG", 1, 1)
    assert near(img.getpixel((2, 2)), RED)


def test_cmyk_jpeg_and_icc_profiles_end_as_plain_rgb() -> None:
    buf = io.BytesIO()
    samples.two_colour().convert("CMYK").save(buf, "JPEG")
    out = process_image(buf.getvalue(), FileKind.JPEG)
    assert Image.open(io.BytesIO(out.data)).mode == "RGB"

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    samples.two_colour().save(buf, "JPEG", icc_profile=srgb)
    assert JPEG_APP2 in samples.jpeg_markers(buf.getvalue())
    out = process_image(buf.getvalue(), FileKind.JPEG)
    assert_clean_jpeg(out.data)


def test_png_loses_text_xmp_and_exif_but_keeps_alpha() -> None:
    source = samples.png_with_metadata()
    assert {b"tEXt", b"iTXt", b"eXIf"} <= set(samples.png_chunks(source))
    out = process_image(source, FileKind.PNG)
    assert out.kind is FileKind.PNG
    assert set(samples.png_chunks(out.data)) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
    assert samples.SECRET not in out.data
    img = Image.open(io.BytesIO(out.data))
    assert img.mode == "RGBA" and img.size == (20, 40)  # eXIf orientation 6 applied
    assert_clean_jpeg(out.thumbnail)


def test_16_bit_grey_png_stays_16_bit() -> None:
    out = process_image(samples.png16_grey(), FileKind.PNG)
    img = Image.open(io.BytesIO(out.data))
    assert img.mode == "I;16" and img.getpixel((3, 3)) == 40000
    thumb = Image.open(io.BytesIO(out.thumbnail))
    assert thumb.mode == "L" and 150 <= int(thumb.getpixel((3, 3))) <= 160  # 40000 / 256


def test_gif_loses_its_comment() -> None:
    source = samples.gif()
    assert (0xFE, samples.SECRET) in samples.gif_extensions(source)
    out = process_image(source, FileKind.GIF)
    assert out.kind is FileKind.GIF and out.frames == 1
    assert not [label for label, _ in samples.gif_extensions(out.data) if label == 0xFE]
    assert samples.SECRET not in out.data


def test_animated_gif_stays_animated_without_metadata() -> None:
    source = samples.gif(frames=4)
    out = process_image(source, FileKind.GIF)
    assert out.frames == 4
    img = Image.open(io.BytesIO(out.data))
    assert img.format == "GIF" and getattr(img, "n_frames", 1) == 4
    frames = [
        (f.info.get("duration"), f.convert("RGB").getpixel((5, 5)))
        for f in ImageSequence.Iterator(img)
    ]
    assert [d for d, _ in frames] == [70, 80, 90, 100]
    assert near(frames[0][1], RED) and near(frames[1][1], (0, 255, 0)) and near(frames[2][1], BLUE)
    labels = [(label, first) for label, first in samples.gif_extensions(out.data)]
    assert {label for label, _ in labels} <= {0xF9, 0xFF}  # graphic control, application
    assert all(first == b"NETSCAPE2.0" for label, first in labels if label == 0xFF)


def test_animation_limits() -> None:
    with pytest.raises(ImageTooLarge) as err:
        process_image(samples.gif(frames=4), FileKind.GIF, ImageLimits(max_frames=3))
    assert err.value.details["reason"] == "frames"
    with pytest.raises(ImageTooLarge):
        process_image(samples.gif(frames=4), FileKind.GIF, ImageLimits(max_animation_pixels=1000))


@pytest.mark.parametrize("lossless", [False, True])
def test_webp_loses_exif_and_xmp(lossless: bool) -> None:
    source = samples.webp(lossless=lossless)
    assert {b"EXIF", b"XMP "} <= set(samples.webp_chunks(source))
    out = process_image(source, FileKind.WEBP)
    chunks = samples.webp_chunks(out.data)
    assert not {b"EXIF", b"XMP ", b"ICCP"} & set(chunks)
    assert (b"VP8L" in chunks) is lossless
    img = Image.open(io.BytesIO(out.data))
    assert img.mode == "RGBA" and img.getpixel((1, 1))[3] == 0  # type: ignore[index]
    assert near(img.getpixel((10, 10)), RED, 60)


def test_animated_webp_stays_animated() -> None:
    out = process_image(samples.webp(frames=3), FileKind.WEBP)
    img = Image.open(io.BytesIO(out.data))
    assert out.frames == 3 and getattr(img, "n_frames", 1) == 3
    assert not {b"EXIF", b"XMP "} & set(samples.webp_chunks(out.data))


def test_heic_becomes_a_clean_rotated_jpeg() -> None:
    source = samples.heic(orientation=6)
    assert b"GPS" in source or Image.open(io.BytesIO(source)).getexif().get_ifd(0x8825)
    out: ProcessedImage = process_image(source, FileKind.HEIC)
    assert out.kind is FileKind.JPEG
    assert_clean_jpeg(out.data)
    img = Image.open(io.BytesIO(out.data))
    assert img.size == (32, 64)  # 64 × 32 turned a quarter
    assert near(img.getpixel((16, 8)), RED, 60) and near(img.getpixel((16, 56)), BLUE, 60)


def test_thumbnail_is_small_jpeg_on_white() -> None:
    big = Image.new("RGBA", (1000, 500), (0, 0, 0, 0))
    buf = io.BytesIO()
    big.save(buf, "PNG")
    out = process_image(buf.getvalue(), FileKind.PNG)
    thumb = Image.open(io.BytesIO(out.thumbnail))
    assert thumb.format == "JPEG" and thumb.size == (320, 160)
    assert (out.thumbnail_width, out.thumbnail_height) == (320, 160)
    assert near(thumb.getpixel((100, 80)), (255, 255, 255), 5)


@pytest.mark.parametrize(
    ("width", "height"),
    [(100_000, 100_000), (10_000, 10_000), (8_000, 8_000)],
    ids=["over-pillow-error", "over-pillow-warning", "over-our-limit"],
)
def test_pixel_floods_are_refused_before_decoding(width: int, height: int) -> None:
    with pytest.raises(ImageTooLarge) as err:
        process_image(samples.png_declaring(width, height), FileKind.PNG)
    assert err.value.code == "image_too_large" and err.value.details["reason"] == "pixels"


def test_pixel_limit_is_configurable_but_not_above_pillows() -> None:
    small = ImageLimits(max_pixels=500)
    with pytest.raises(ImageTooLarge, match="40 × 20"):
        process_image(samples.jpeg_with_gps(), FileKind.JPEG, small)
    with pytest.raises(ValueError):
        ImageLimits(max_pixels=10**9)


def test_truncated_image_is_corrupt() -> None:
    buf = io.BytesIO()
    Image.effect_noise((300, 300), 60).convert("RGB").save(buf, "JPEG")
    with pytest.raises(CorruptFile):
        process_image(buf.getvalue()[:2000], FileKind.JPEG)
    with pytest.raises(CorruptFile):
        process_image(samples.png_with_metadata()[:-30], FileKind.PNG)


def test_content_of_another_format_is_corrupt() -> None:
    with pytest.raises(CorruptFile):
        process_image(samples.png_with_metadata(), FileKind.JPEG)
