"""`.npz` landmark track files: what `talkanim landmarks` writes and `animate` reads as a driver.

Plain arrays only (np.load with allow_pickle=False), checked field by field on load, so a
foreign or tampered file gives one clear InputError instead of a crash further down.

Version 2 adds the optional `mesh` (N, 478, 3) of the mesh backend; version-1 files (no mesh)
still load, with `mesh` None.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError
from .types import LandmarkTrack

FORMAT = "talkanim-track"
VERSION = 2
_FIELDS = ("format", "version", "points", "pupils", "valid", "fps", "size", "backend")


def save_track(path: str | os.PathLike, track: LandmarkTrack) -> None:
    """Write `track` to `path` (.npz, compressed), atomically (temporary file, then rename)."""
    path = Path(path)
    buf = io.BytesIO()
    extra = {} if track.mesh is None else {"mesh": np.asarray(track.mesh, dtype=np.float32)}
    np.savez_compressed(
        buf,
        **extra,
        format=np.array(FORMAT),
        version=np.array(VERSION, dtype=np.int64),
        points=np.asarray(track.points, dtype=np.float32),
        pupils=np.asarray(track.pupils, dtype=np.float32),
        valid=np.asarray(track.valid, dtype=bool),
        fps=np.array(float(track.fps), dtype=np.float64),
        size=np.array(track.size, dtype=np.int64),
        backend=np.array(str(track.backend)),
        cuts=np.asarray(track.cuts, dtype=np.int64),
    )
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write track file {path}: {exc.strerror or exc}") from exc


def _bad(path, why: str) -> InputError:
    return InputError(f"not a talkanim track file: {path} ({why})")


def load_track(path: str | os.PathLike) -> LandmarkTrack:
    """Read a track written by `save_track`; InputError("not a talkanim track file: ...") otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"track file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise _bad(path, "a single .npy array, not an .npz archive")
            missing = [k for k in _FIELDS if k not in z.files]
            if missing:
                raise _bad(path, f"missing {', '.join(missing)}")
            data = {k: z[k] for k in _FIELDS}
            # optional: files written before cuts were tracked have none
            cuts = z["cuts"] if "cuts" in z.files else np.zeros(0, np.int64)
            # optional: version 2, mesh backend only
            mesh = z["mesh"] if "mesh" in z.files else None
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as exc:
        # ValueError covers pickled object arrays refused by allow_pickle=False; zlib.error a
        # compressed member whose bytes were damaged (found by the fuzz test).
        raise _bad(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    if data["format"].shape != () or str(data["format"]) != FORMAT:
        raise _bad(path, "wrong format tag")
    if data["version"].shape != () or not np.issubdtype(data["version"].dtype, np.integer):
        raise _bad(path, "bad version")
    if int(data["version"]) > VERSION:
        raise _bad(path, f"version {int(data['version'])} is newer than this talkanim reads ({VERSION})")
    points, pupils, valid = data["points"], data["pupils"], data["valid"]
    if points.ndim != 3 or points.shape[1:] != (68, 2) or points.shape[0] < 1 or not np.issubdtype(points.dtype, np.floating):
        raise _bad(path, f"points must be float (N>=1, 68, 2), got {points.dtype} {points.shape}")
    n = points.shape[0]
    if pupils.shape != (n, 2, 2) or not np.issubdtype(pupils.dtype, np.floating):
        raise _bad(path, f"pupils must be float ({n}, 2, 2), got {pupils.dtype} {pupils.shape}")
    if valid.shape != (n,) or valid.dtype != np.bool_:
        raise _bad(path, f"valid must be bool ({n},), got {valid.dtype} {valid.shape}")
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(pupils))):
        raise _bad(path, "non-finite coordinates")
    fps, size, backend = data["fps"], data["size"], data["backend"]
    if fps.shape != () or not np.issubdtype(fps.dtype, np.number) or not (np.isfinite(fps) and float(fps) > 0):
        raise _bad(path, "fps must be a positive number")
    if size.shape != (2,) or not np.issubdtype(size.dtype, np.integer) or np.any(size <= 0):
        raise _bad(path, "size must be two positive integers (width, height)")
    if backend.shape != () or backend.dtype.kind != "U":
        raise _bad(path, "backend must be a string")
    if (cuts.ndim != 1 or not np.issubdtype(cuts.dtype, np.integer) or np.any(np.diff(cuts) <= 0)
            or np.any(cuts <= 0) or np.any(cuts >= n)):
        raise _bad(path, f"cuts must be ascending frame indices in 1..{n - 1}")
    if mesh is not None and (mesh.shape != (n, 478, 3) or not np.issubdtype(mesh.dtype, np.floating)
                             or not np.all(np.isfinite(mesh))):
        raise _bad(path, f"mesh must be finite float ({n}, 478, 3), got {mesh.dtype} {mesh.shape}")
    return LandmarkTrack(
        points=points.astype(np.float32),
        pupils=pupils.astype(np.float32),
        valid=valid.astype(bool),
        fps=float(fps),
        size=(int(size[0]), int(size[1])),
        backend=str(backend),
        cuts=tuple(int(c) for c in cuts),
        mesh=None if mesh is None else mesh.astype(np.float32),
    )
