"""talkanim.io image loading: every kind of file a user may have, made here with Pillow."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import talkanim.io.image as image_mod
from talkanim.errors import InputError
from talkanim.io import is_image_path, is_video_path, load_image


@pytest.fixture()
def face(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut[::8, ::8])  # 64x64 RGB, real content


@pytest.mark.parametrize("ext,kwargs", [(".png", {}), (".tiff", {}), (".bmp", {}),
                                        (".webp", {"lossless": True})])
def test_lossless_formats_round_trip(tmp_path: Path, face: np.ndarray, ext: str, kwargs) -> None:
    p = tmp_path / f"face{ext}"
    Image.fromarray(face).save(p, **kwargs)
    out = load_image(p)
    assert out.dtype == np.uint8 and out.shape == face.shape and out.flags.writeable
    np.testing.assert_array_equal(out, face)


def test_jpeg_and_lossy_webp(tmp_path: Path, face: np.ndarray) -> None:
    for ext in (".jpg", ".webp"):
        p = tmp_path / f"face{ext}"
        Image.fromarray(face).save(p, quality=95)
        out = load_image(p)
        assert out.shape == face.shape
        assert np.abs(out.astype(int) - face).mean() < 6


def test_rgba_composited_over_white(tmp_path: Path) -> None:
    a = np.zeros((10, 10, 4), np.uint8)
    a[:, :5] = (255, 0, 0, 255)  # opaque red
    a[:, 5:] = (0, 0, 255, 0)  # fully transparent blue
    a[0, 9] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    p = tmp_path / "rgba.png"
    Image.fromarray(a, "RGBA").save(p)
    out = load_image(p)
    assert out.shape == (10, 10, 3)
    assert tuple(out[5, 2]) == (255, 0, 0)
    assert tuple(out[5, 7]) == (255, 255, 255)
    assert 120 <= out[0, 9, 0] <= 135


def test_la_and_palette_with_transparency(tmp_path: Path) -> None:
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), "LA")
    la.save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (0, 0, 0)

    p = Image.new("P", (4, 1))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putdata([0, 1, 1, 0])
    p.info["transparency"] = 0
    p.save(tmp_path / "pal.gif", transparency=0)
    p.save(tmp_path / "pal.png", transparency=0)
    for name in ("pal.gif", "pal.png"):
        out = load_image(tmp_path / name)
        assert tuple(out[0, 0]) == (255, 255, 255), name
        assert tuple(out[0, 1]) == (0, 255, 0), name


def test_palette_grayscale_bilevel(tmp_path: Path, face: np.ndarray) -> None:
    rgb = Image.fromarray(face)
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    assert out.shape == face.shape and np.abs(out.astype(int) - face).mean() < 12

    rgb.convert("L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == face.shape
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()

    rgb.convert("1").save(tmp_path / "b.png")
    out = load_image(tmp_path / "b.png")
    assert set(np.unique(out)) <= {0, 255}


def test_cmyk_jpeg_and_tiff(tmp_path: Path) -> None:
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    for name in ("c.jpg", "c.tiff"):
        im.save(tmp_path / name)
        out = load_image(tmp_path / name)
        assert out.shape == (16, 16, 3)
        r, g, b = out[8, 8].astype(int)
        assert r > 200 and g < 60 and b < 60, (name, r, g, b)


def test_16bit_gradient_is_scaled_not_clipped(tmp_path: Path) -> None:
    grad = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    p = tmp_path / "g16.png"
    Image.fromarray(grad).save(p)
    with Image.open(p) as check:
        assert check.mode in ("I;16", "I")  # really a 16-bit file
    out = load_image(p)
    row = out[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert (np.diff(row) >= 0).all()  # ordering kept
    assert len(np.unique(row)) > 200  # spread over the 8-bit range, not clipped to 255


def test_float_and_32bit_images(tmp_path: Path) -> None:
    f = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (2, 1))
    Image.fromarray(f, "F").save(tmp_path / "f.tiff")
    out = load_image(tmp_path / "f.tiff")
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert (np.diff(out[0, :, 0].astype(int)) >= 0).all()

    i32 = np.tile(np.arange(-1000, 1000, 20, dtype=np.int32), (2, 1))
    Image.fromarray(i32, "I").save(tmp_path / "i.tiff")
    out = load_image(tmp_path / "i.tiff")
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255


def test_exif_orientation_applied(tmp_path: Path) -> None:
    a = np.zeros((20, 40, 3), np.uint8)  # stored landscape, 40 wide
    a[:, :20] = (255, 255, 255)  # left half white
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=95)
    out = load_image(p)
    assert out.shape == (40, 20, 3)  # displayed portrait
    # Rotating clockwise moves the stored left half to the top.
    assert out[:20].mean() > 200 and out[20:].mean() < 50


def test_one_pixel_image(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "px.png")
    out = load_image(tmp_path / "px.png")
    assert out.shape == (1, 1, 3) and tuple(out[0, 0]) == (1, 2, 3)


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.jpg"
    with pytest.raises(InputError, match="no such file") as err:
        load_image(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n")
    with pytest.raises(InputError, match="not an image") as err:
        load_image(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_folder_and_truncated_file(tmp_path: Path, face: np.ndarray) -> None:
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)
    full = tmp_path / "full.jpg"
    Image.fromarray(np.repeat(np.repeat(face, 4, 0), 4, 1)).save(full, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputError, match="damaged") as err:
        load_image(cut)
    assert str(cut) in str(err.value)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_refused(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(100_000, 100_000))  # claims 10 gigapixels
    with pytest.raises(InputError, match="too large") as err:
        load_image(p)
    assert str(p) in str(err.value)

    p2 = tmp_path / "big.png"
    p2.write_bytes(_png_header_only(12_000, 12_000))  # 144 MP: over our limit, under Pillow's
    with pytest.raises(InputError, match="too large"):
        load_image(p2)


def test_limit_is_one_module_constant(tmp_path: Path, monkeypatch, face: np.ndarray) -> None:
    p = tmp_path / "face.png"
    Image.fromarray(face).save(p)
    monkeypatch.setattr(image_mod, "MAX_IMAGE_PIXELS", 64 * 64 - 1)
    with pytest.raises(InputError, match="too large"):
        load_image(p)
    monkeypatch.setattr(image_mod, "MAX_IMAGE_PIXELS", 64 * 64)
    assert load_image(p).shape == (64, 64, 3)


def test_sniffing_tells_images_videos_and_tracks_apart(
    tmp_path: Path, face: np.ndarray, example_driver: Path
) -> None:
    png_as_mp4 = tmp_path / "really_png.mp4"
    Image.fromarray(face).save(png_as_mp4, format="PNG")
    assert is_image_path(png_as_mp4) and not is_video_path(png_as_mp4)

    assert is_video_path(example_driver) and not is_image_path(example_driver)
    video_as_jpg = tmp_path / "clip.jpg"
    video_as_jpg.write_bytes(example_driver.read_bytes())
    assert is_video_path(video_as_jpg) and not is_image_path(video_as_jpg)

    track = tmp_path / "track.npz"
    np.savez(track, points=np.zeros((3, 68, 2)))
    assert not is_image_path(track) and not is_video_path(track)

    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    assert is_image_path(text) and not is_video_path(text)  # extension decides; load explains
    assert is_video_path(tmp_path / "missing.MP4") and is_image_path(tmp_path / "missing.PNG")
