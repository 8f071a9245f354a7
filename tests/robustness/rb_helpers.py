"""Helpers of the robustness suite (imported by its tests as `rb_helpers`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def cli_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "talkanim", *map(str, args)]


def run_cli(*args, cwd: Path | None = None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cli_cmd(*args), capture_output=True, cwd=cwd, timeout=timeout, **kwargs)


def ffmpeg(*args) -> None:
    """Run the bundled ffmpeg (argument list) to make a test file; fail loudly if it fails."""
    res = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *map(str, args)],
                         capture_output=True)
    assert res.returncode == 0, res.stderr.decode()


def stderr_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.decode("utf-8", errors="replace")


def error_line(proc: subprocess.CompletedProcess) -> str:
    """Exactly one `error:` line on stderr, no traceback; returns it."""
    err = stderr_of(proc)
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def leftovers(*folders: Path) -> list[str]:
    """Temporary files (`.NAME.XXXX.tmp.EXT`) and MP4 outputs left in `folders`."""
    found = []
    for folder in folders:
        for p in Path(folder).iterdir():
            if ".tmp" in p.name or (p.suffix == ".mp4" and p.name.startswith("out")):
                found.append(str(p))
    return sorted(found)


def assert_fails(proc, code: int, *fragments: str, out: Path | None = None) -> str:
    """The clean failure contract: exit `code`, one error line containing every fragment
    (case-insensitive), no traceback, no output and no temporary file beside `out`."""
    line = error_line(proc)
    assert proc.returncode == code, (proc.returncode, stderr_of(proc))
    for frag in fragments:
        assert frag.lower() in line.lower(), line
    if out is not None:
        assert not out.exists(), out
        assert not [p for p in out.parent.iterdir() if ".tmp" in p.name], list(out.parent.iterdir())
    return line


def probe_frames(path: Path) -> tuple[int, float, bool, tuple[int, int]]:
    """(frames, duration of the video stream, has audio, (width, height)) of an output."""
    from talkanim.io import probe_video

    info = probe_video(path)
    return info.num_frames, info.num_frames / info.fps, info.has_audio, (info.width, info.height)
