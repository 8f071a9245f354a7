"""Write outputs all-or-nothing: a hidden temporary file beside the target, renamed when done.

A reader (or a rerun of `batch`) therefore never sees a half-written file under the final
name, and an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from talkanim.errors import OutputError


def check_output_dir(target: Path) -> Path:
    """Raise `OutputError` unless `target`'s folder exists and is a folder; return the folder.

    Writability itself is proven by creating the temporary file (os.access lies for root and
    on some network file systems).
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.exists():
        raise OutputError(f"cannot write output, folder does not exist: {folder}")
    if not folder.is_dir():
        raise OutputError(f"cannot write output, not a folder: {folder}")
    if target.is_dir():
        raise OutputError(f"cannot write output, it is a folder: {target}")
    return folder


def _create_temp(target: Path) -> Path:
    folder = check_output_dir(target)
    # Keep the real extension last so tools that infer the format from it (ffmpeg, numpy)
    # still do: ".out.mp4" -> ".out.mp4.3f9a1c.tmp.mp4".
    for _ in range(100):
        tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}"
        try:
            # O_EXCL: never clobber anything; mode 0o666 lets the umask decide the final
            # permissions, unlike mkstemp's 0o600.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            reason = exc.strerror or exc.__class__.__name__
            raise OutputError(f"cannot write output in {folder} ({reason}): {target}") from None
        os.close(fd)
        return tmp
    raise OutputError(f"cannot create a temporary file beside: {target}")  # pragma: no cover


@contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` when the block succeeds.

    The temporary file (`.NAME.XXXXXXXX.tmp.EXT`, in the same folder so the rename is atomic)
    is created empty before the block runs, which also proves the folder is writable: a
    missing or read-only folder raises `OutputError` before any work is done. On any exception,
    KeyboardInterrupt and SystemExit included, the temporary file is deleted and the
    exception re-raised; `target` is left untouched.
    """
    target = Path(target)
    tmp = _create_temp(target)
    try:
        yield tmp
    except BaseException:
        _unlink_quietly(tmp)
        raise
    try:
        os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        reason = exc.strerror or exc.__class__.__name__
        raise OutputError(f"cannot write output ({reason}): {target}") from None


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
