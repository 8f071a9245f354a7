"""Unusual and bad portraits, through the real command line."""

from __future__ import annotations

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from rb_helpers import assert_fails, probe_frames, run_cli, stderr_of

W, H = 300, 256  # display size of the working portraits (not square, so rotation shows)


@pytest.fixture(scope="module")
def formats(tmp_path_factory, astronaut) -> dict[str, object]:
    """The six formats that must work, each showing the astronaut at W x H."""
    folder = tmp_path_factory.mktemp("formats")
    rgb = Image.fromarray(astronaut).resize((W, H), Image.LANCZOS)
    rgb.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    rgb16 = (np.asarray(rgb).astype(np.uint16) * 257)[:, :, ::-1]  # BGR for OpenCV
    assert cv2.imwrite(str(folder / "deep16.png"), rgb16)
    rgb.convert("P", palette=Image.ADAPTIVE, colors=256).save(folder / "palette.png")
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(np.where(np.arange(W) < W - 20, 255, 0).astype(np.uint8)[None].repeat(H, 0)))
    rgba.save(folder / "rgba.png")
    rgb.convert("L").save(folder / "gray.png")
    # Stored 90 degrees counter-clockwise (H x W pixels); EXIF orientation 6 turns it upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb.transpose(Image.ROTATE_90).save(folder / "exif_rotated.jpg", exif=exif, quality=95)
    return folder


def test_six_formats_work_end_to_end(formats, driver_5f, tmp_path):
    from talkanim.io import load_image

    names = sorted(p.name for p in formats.iterdir())
    assert len(names) == 6
    for name in names:  # the loader itself: display orientation, 8-bit RGB
        assert load_image(formats / name).shape == (H, W, 3), name
    out = tmp_path / "out"
    proc = run_cli("batch", driver_5f, formats, "-o", out, "--json", "-q")
    assert proc.returncode == 0, stderr_of(proc)
    items = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert sorted(i["status"] for i in items) == ["ok"] * 6, items
    for item in items:
        assert (item["width"], item["height"]) == (W, H), item
        assert probe_frames(item["output"])[3] == (W, H), item


def test_one_pixel_image_has_no_face(driver_1s, tmp_path):
    src = tmp_path / "pixel.png"
    Image.new("RGB", (1, 1), (200, 150, 120)).save(src)
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", src, driver_1s, "-o", out), 3, "no face found", out=out)


def test_12000_square_image_refused_with_limit(driver_1s, tmp_path):
    src = tmp_path / "huge.png"
    Image.new("1", (12000, 12000), 1).save(src)  # 144 MP, a few hundred kB on disk
    out = tmp_path / "out.mp4"
    line = assert_fails(run_cli("animate", src, driver_1s, "-o", out), 2, "too large", "12000x12000", "limit 120", out=out)
    assert "huge.png" in line


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_decompression_bomb_refused(driver_1s, tmp_path):
    # A 200-byte PNG whose header claims 50000 x 50000 RGB (7.5 GB decoded).
    src = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                    + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""))
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", src, driver_1s, "-o", out), 2, "too large", "decompression bomb", out=out)


def test_text_file_named_jpg(driver_1s, tmp_path):
    src = tmp_path / "notes.jpg"
    src.write_text("this is not a picture\n")
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", src, driver_1s, "-o", out), 2, "not an image", "notes.jpg", out=out)


def test_truncated_jpeg(driver_1s, portrait, tmp_path):
    src = tmp_path / "cut.jpg"
    Image.open(portrait).convert("RGB").save(src, quality=90)
    src.write_bytes(src.read_bytes()[:600])
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", src, driver_1s, "-o", out), 2, "cut.jpg", out=out)
