"""Weights files: safetensors only, written atomically, checked before anything is parsed.

`load_weights` never calls torch.load or pickle: it checks the sha256 (when one is expected),
then the safetensors header by hand (size, JSON, every tensor's dtype / shape / byte range
inside the file and covering it exactly), and only then lets safetensors read the tensors. Any
failure is a `WeightsError` with one line saying what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import WeightsError

_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
_MAX_HEADER = 100 * 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_weights(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Write `tensors` + string `metadata` as safetensors at `path` atomically; return sha256.

    Tensors are copied to CPU and made contiguous (and unshared) first. The file appears under
    its name only once complete (temp file in the same folder, fsync, os.replace).
    """
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    data = st_save(clean, metadata={str(k): str(v) for k, v in metadata.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sha256_bytes(data)


def _check_header(data: bytes, name: str) -> None:
    """Raise WeightsError unless `data` is a well-formed safetensors file."""
    if data[:2] == b"PK":
        raise WeightsError(f"{name}: a zip/torch.save archive, not safetensors; refusing to load it")
    if data[:1] == b"\x80":
        raise WeightsError(f"{name}: a pickle file, not safetensors; refusing to load it")
    if len(data) < 8:
        raise WeightsError(f"{name}: too short to be a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n == 0 or n > _MAX_HEADER or 8 + n > len(data):
        raise WeightsError(f"{name}: not a safetensors file, or truncated (bad header size)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError(f"{name}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{name}: corrupt safetensors header")
    body = len(data) - 8 - n
    end_max = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (lo, hi) = info["dtype"], info["shape"], info["data_offsets"]
            count = 1
            for s in shape:
                count *= int(s)
            ok = dtype in _DTYPE_SIZES and 0 <= lo <= hi <= body and hi - lo == count * _DTYPE_SIZES[dtype]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise WeightsError(f"{name}: corrupt or truncated safetensors file (tensor {key!r})")
        end_max = max(end_max, hi)
    if end_max != body:
        raise WeightsError(f"{name}: truncated or padded safetensors file ({body} data bytes, "
                           f"{end_max} described)")


def load_weights(path: str | os.PathLike, expected_sha256: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file -> (tensors on CPU, metadata). Never unpickles anything.

    Raises WeightsError when the file is missing, its sha256 differs from `expected_sha256`,
    or it is not a complete, well-formed safetensors file.
    """
    path = Path(path)
    name = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{name}: weights file not found") from None
    except OSError as e:
        raise WeightsError(f"{name}: cannot read weights ({e.strerror or e})") from None
    if expected_sha256 is not None:
        actual = sha256_bytes(data)
        if actual.lower() != expected_sha256.lower():
            raise WeightsError(f"{name}: sha256 mismatch (expected {expected_sha256[:12]}…, "
                               f"got {actual[:12]}…): the file is damaged or not the one expected")
    _check_header(data, name)
    try:
        tensors = st_load(data)
        (n,) = struct.unpack("<Q", data[:8])
        metadata = json.loads(data[8:8 + n]).get("__metadata__") or {}
    except Exception as e:  # safetensors raises its own error types
        raise WeightsError(f"{name}: unreadable safetensors file ({type(e).__name__})") from None
    return tensors, {str(k): str(v) for k, v in metadata.items()}
