"""Ctrl-C and SIGTERM sent to a real `talkanim` process mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rb_helpers import FFMPEG, cli_cmd, ffmpeg, probe_frames, run_cli, stderr_of, EXAMPLES


def _descendants(pid: int) -> set[int]:
    """Every live process whose parent chain leads to `pid` (ffmpeg runs in its own session)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            parents[int(entry)] = (int(fields[1]), fields[0])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (pp, _) in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"exited early ({proc.returncode}): {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the run never got to the point where it should be interrupted")


def _running_ffmpeg(pid: int) -> set[int]:
    """The live ffmpeg processes among `pid`'s descendants."""
    def is_ffmpeg(c: int) -> bool:
        try:
            return "ffmpeg" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
    return {c for c in _descendants(pid) if _alive(c) and is_ffmpeg(c)}


def _interrupt(proc: subprocess.Popen, sig: int, ready=lambda: True) -> tuple[float, set[int], str]:
    """Send `sig` as soon as `ready()` holds while an ffmpeg of the run is alive (an encoder can
    be between two calls at any moment, so both are checked right before the signal)."""
    _wait_for(lambda: ready() and _running_ffmpeg(proc.pid), 180, proc)
    children = _descendants(proc.pid)
    sent = time.monotonic()
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running 15 s after {signal.Signals(sig).name}")
    took = time.monotonic() - sent
    err = proc.stderr.read().decode()
    time.sleep(0.2)
    return took, {c for c in children if _alive(c)}, err


def _tmp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_animate_interrupted_mid_render(portrait, driver_long, tmp_path, sig, code, word):
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(cli_cmd("animate", portrait, driver_long, "-o", out),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: _tmp_files(tmp_path), 120, proc)  # the writer's temp file: rendering
    time.sleep(0.5)
    took, alive, err = _interrupt(proc, sig)
    assert proc.returncode == code, err
    assert f"error: {word}" in err and "Traceback" not in err, err
    assert took < 2.5, f"took {took:.1f} s to stop"
    assert not alive, f"processes left running: {alive}"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def driver_2s(media) -> Path:
    path = media / "driver2s.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", path)
    return path


@pytest.fixture()
def portraits(tmp_path, portrait) -> Path:
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(portrait, folder / f"{name}.png")
    return folder


@pytest.mark.parametrize("sig, code, workers", [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 2)])
def test_batch_interrupted_then_resumed(portraits, driver_2s, tmp_path, sig, code, workers):
    out = tmp_path / "out"
    proc = subprocess.Popen(cli_cmd("batch", driver_2s, portraits, "-o", out, "--workers", workers),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Interrupt once at least one portrait is finished and another one is being written.
    took, alive, err = _interrupt(proc, sig, lambda: out.is_dir() and _tmp_files(out) and any(
        p.suffix == ".mp4" and ".tmp" not in p.name for p in out.iterdir()))
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    assert took < 2.5 * workers, f"took {took:.1f} s to stop"
    assert not alive, f"processes left running: {alive}"
    assert _tmp_files(out) == []
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert 1 <= len(done) < 3
    for name in done:
        assert probe_frames(out / name)[0] == 50  # finished outputs are intact
    if workers > 1:
        return  # the rerun is the same code path as with one worker (tested there): save time
    # The rerun finishes the rest and does not redo what was finished.
    proc = run_cli("batch", driver_2s, portraits, "-o", out, "--json", "-q", "--workers", workers)
    assert proc.returncode == 0, stderr_of(proc)
    items = {Path(i["output"]).name: i["status"] for i in map(json.loads, proc.stdout.decode().splitlines())}
    assert {n for n, s in items.items() if s == "skipped"} == set(done)
    assert sum(s == "ok" for s in items.values()) == 3 - len(done)
    for name, mtime in done.items():
        assert (out / name).stat().st_mtime_ns == mtime
