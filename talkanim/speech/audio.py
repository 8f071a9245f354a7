"""Speech in: any file ffmpeg reads with an audio track, decoded to 16 kHz mono, streamed.

`iter_audio` yields the waveform in chunks from an ffmpeg pipe, so a one-hour talk never sits
in memory. ffmpeg gets an argument list and an absolute `file:` path (a name starting with '-'
is not an option), runs in its own session (a terminal Ctrl-C reaches Python, which kills it),
and is killed and reaped whenever the generator ends, is closed or raises.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from talkanim.errors import InputError
from talkanim.io import ffmpeg_exe
from talkanim.io.video import _ffmpeg_path, _read_full, _read_tail  # the same pipe, read as video is

SAMPLE_RATE = 16000
CHUNK_SECONDS = 10.0


def _reason(stderr: str, path: Path) -> str:
    """One line saying why ffmpeg could not give us audio from `path`."""
    low = stderr.lower()
    if "matches no streams" in low or "does not contain any stream" in low:
        return f"no audio track in {path}"
    if "moov atom not found" in low:
        return f"damaged or truncated file (no moov atom): {path}"
    if "invalid data found" in low or "could not find codec parameters" in low:
        return f"not an audio or video file ffmpeg can read: {path}"
    lines = [ln.strip() for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()]
    last = lines[-1] if lines else "no message from ffmpeg"
    return f"cannot read audio ({last}): {path}"


def check_speech_file(path: str | Path) -> Path:
    """The absolute path of a readable speech file, or InputError (one line)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"speech not found: {p}")
    if p.is_dir():
        raise InputError(f"speech is a folder, not a file: {p}")
    if not os.access(p, os.R_OK):
        raise InputError(f"cannot read speech, permission denied: {p}")
    return p.resolve()


def iter_audio(path: str | Path, chunk_seconds: float = CHUNK_SECONDS) -> Iterator[np.ndarray]:
    """The first audio track of `path` as float32 mono samples at 16 kHz, in chunks.

    Chunks hold `chunk_seconds` of audio (the last one less). Raises InputError when the file
    is missing, is not media ffmpeg reads, has no audio track, or yields no audio at all, and
    when decoding fails midway (ffmpeg's exit status).
    """
    p = check_speech_file(path)
    return _chunks(p, max(1, int(chunk_seconds * SAMPLE_RATE)))


def _chunks(p: Path, chunk: int) -> Iterator[np.ndarray]:
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats",
        "-i", _ffmpeg_path(p), "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "pipe:1",
    ]
    with tempfile.TemporaryFile() as errf:  # a file, never a pipe ffmpeg could block on
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
                                bufsize=0, start_new_session=True)
        try:
            total = 0
            while True:
                samples = np.empty(chunk, np.float32)
                got = _read_full(proc.stdout, memoryview(samples).cast("B")) // 4  # whole samples
                if got:
                    total += got
                    yield samples[:got]
                if got < chunk:
                    break
            rc = proc.wait()
            if total == 0:
                raise InputError(_reason(_read_tail(errf), p) if rc != 0 else f"no audio could be decoded from {p}")
            if rc != 0:
                raise InputError(f"audio decoding failed after {total / SAMPLE_RATE:.1f} s "
                                 f"({_reason(_read_tail(errf), p)})")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()


def read_audio(path: str | Path) -> np.ndarray:
    """The whole first audio track at 16 kHz mono (for short clips: training, tests)."""
    parts = list(iter_audio(path))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
