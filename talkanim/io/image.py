"""Load any still image a user has as (H, W, 3) uint8 RGB, in display orientation."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from talkanim.errors import InputError

# Largest image accepted, in pixels (width * height). Bigger files are refused as possible
# decompression bombs: 120 MP of RGB is already 360 MB in memory before any processing.
MAX_IMAGE_PIXELS = 120_000_000

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif",
     ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico"}
)

# Leading bytes of the image formats Pillow reads here (offset, magic).
_IMAGE_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"BM"),
    (0, b"II*\x00"),  # TIFF little-endian
    (0, b"MM\x00*"),  # TIFF big-endian
    (8, b"WEBP"),  # RIFF....WEBP
)


# ISO-BMFF brands of still images (AVIF, HEIF): MP4-like boxes, but pictures.
_STILL_BRANDS = frozenset({b"avif", b"heic", b"heix", b"mif1", b"msf1"})


def sniff_image(head: bytes) -> bool:
    """True when `head` (a file's first bytes) starts like an image Pillow reads."""
    if head[4:8] == b"ftyp":
        return head[8:12] in _STILL_BRANDS
    if head[8:12] == b"WEBP" and head[:4] != b"RIFF":
        return False
    return any(head[off : off + len(magic)] == magic for off, magic in _IMAGE_MAGIC)


def read_head(path: Path, n: int = 64) -> bytes | None:
    """The first `n` bytes of a regular file, or None when it cannot be read."""
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return None


def is_image_path(path: str | Path) -> bool:
    """Whether `path` is a still image: by its first bytes when readable, else its extension.

    A readable file whose bytes say "image" is an image whatever its name; one whose bytes say
    video or zip (a `.npz` track) is not. Unknown bytes fall back to the extension, so a text
    file named `.jpg` counts as an image here and `load_image` then explains what is wrong.
    """
    from talkanim.io.video import sniff_video  # local: video imports this module

    p = Path(path)
    head = read_head(p)
    if head:
        if sniff_image(head):
            return True
        if sniff_video(head) or head.startswith(b"PK\x03\x04"):
            return False
    return p.suffix.lower() in IMAGE_EXTENSIONS


def load_image(path: str | Path) -> np.ndarray:
    """Load an image file as a writable (H, W, 3) uint8 RGB array in display orientation.

    Reads whatever Pillow reads (JPEG, PNG, WebP, TIFF, BMP, GIF: first frame). EXIF
    orientation is applied. Transparent images (RGBA, LA, palette with transparency) are
    composited over white. Grayscale, CMYK, palette and YCbCr become RGB; 16-bit and float
    images are rescaled to 8 bits (not clipped). Images above `MAX_IMAGE_PIXELS` are refused.

    Raises `InputError` (one line, naming the path) when the file is missing, is not an image,
    is damaged or too large.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"cannot read image, no such file: {p}")
    if p.is_dir():
        raise InputError(f"cannot read image, it is a folder: {p}")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit (89 MP) and errors above twice that; we apply
            # our own single limit below, so silence the warning here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                _check_size(img, p)
                img = ImageOps.exif_transpose(img) or img
                img.load()
                return _to_rgb8(img)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(
            f"image too large (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels, "
            f"possible decompression bomb): {p}"
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"not an image (unrecognized or unsupported format): {p}") from None
    except PermissionError:
        raise InputError(f"cannot read image, permission denied: {p}") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        # Pillow reports damaged files with OSError ("image file is truncated"), SyntaxError
        # (bad headers in some plugins), ValueError or EOFError.
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(f"damaged or unreadable image ({reason}): {p}") from None
    except MemoryError:
        raise InputError(f"image too large to load into memory: {p}") from None


def _check_size(img: Image.Image, p: Path) -> None:
    w, h = img.size
    if w <= 0 or h <= 0:
        raise InputError(f"image has no pixels ({w}x{h}): {p}")
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(
            f"image too large ({w}x{h} = {w * h / 1e6:.0f} megapixels, limit "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f}; possible decompression bomb): {p}"
        )


def _to_rgb8(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.array(img, dtype=np.uint8)
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_to_rgb8(img)
    # L, 1, P, CMYK, YCbCr, LAB, HSV: Pillow's own conversions are right for these.
    return np.array(img.convert("RGB"), dtype=np.uint8)


def _high_depth_to_rgb8(img: Image.Image) -> np.ndarray:
    """16-bit / 32-bit int / float grayscale to 8 bits, keeping the full tonal range."""
    a = np.asarray(img)
    if img.mode.startswith("I;16"):
        a = a.astype(np.float32) / 257.0  # 65535 -> 255 exactly
    else:
        a = a.astype(np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
            a = a * 255.0  # normalized float image
        elif img.mode == "I" and lo >= 0 and hi <= 255:
            pass  # an 8-bit image stored in 32-bit mode
        elif img.mode == "I" and lo >= 0 and hi <= 65535:
            a = a / 257.0  # 16-bit PNG/TIFF opened as "I" by older Pillow
        elif hi > lo:
            a = (a - lo) * (255.0 / (hi - lo))  # arbitrary range: stretch
        else:
            a = np.zeros_like(a)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
    g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)
