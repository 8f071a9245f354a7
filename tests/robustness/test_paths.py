"""Odd names and unwritable outputs, through the real command line."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from rb_helpers import assert_fails, probe_frames, run_cli, stderr_of


def test_spaces_and_unicode_in_names(portrait, driver_1s, tmp_path):
    folder = tmp_path / "dossier é 画"
    folder.mkdir()
    src, drv = folder / "portrait é 画.png", folder / "driver ü 話.mp4"
    shutil.copy(portrait, src)
    shutil.copy(driver_1s, drv)
    out = folder / "out é 画.mp4"
    proc = run_cli("animate", src, drv, "-o", out)
    assert proc.returncode == 0, stderr_of(proc)
    assert str(out) in stderr_of(proc)
    assert probe_frames(out)[0] == 25


def test_names_beginning_with_dash(portrait, driver_1s, tmp_path):
    shutil.copy(portrait, tmp_path / "-x.png")
    shutil.copy(driver_1s, tmp_path / "-i.mp4")  # "-i" would be ffmpeg's input option
    proc = run_cli("animate", "-o", "./-out.mp4", "-q", "--", "-x.png", "-i.mp4", cwd=tmp_path)
    assert proc.returncode == 0, stderr_of(proc)
    assert probe_frames(tmp_path / "-out.mp4")[0] == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-i.mp4", "-out.mp4", "-x.png"]


def _immutable(folder: Path) -> bool:
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


def test_read_only_folder_binds_root_too(portrait, driver_1s, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if shutil.which("chattr") is None or not _immutable(folder):
        pytest.skip("chattr +i is not available here (needs root and a file system that supports it)")
    try:
        with pytest.raises(OSError):  # really read-only, even for root
            (folder / "probe").write_bytes(b"x")
        out = folder / "out.mp4"
        assert_fails(run_cli("animate", portrait, driver_1s, "-o", out), 4, str(folder), out=out)
    finally:
        subprocess.run(["chattr", "-i", str(folder)])
    assert list(folder.iterdir()) == []


def test_unwritable_folder_where_os_access_says_yes(portrait, driver_1s):
    # /proc accepts no new files, while os.access(W_OK) is True for root: the code must find
    # out by trying to write, not by asking.
    out = Path("/proc") / f"talkanim-{uuid.uuid4().hex[:8]}.mp4"
    if not Path("/proc").is_dir():
        pytest.skip("no /proc")
    assert_fails(run_cli("animate", portrait, driver_1s, "-o", out), 4, "cannot", str(out.name))


def test_full_disk_file_size_limit(portrait, driver_1s, tmp_path):
    """RLIMIT_FSIZE: writes past 20 kB fail (EFBIG / SIGXFSZ for ffmpeg), like a full disk."""
    out = tmp_path / "out.mp4"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = run_cli("animate", portrait, driver_1s, "-o", out, preexec_fn=limit)
    assert_fails(proc, 4, "cannot write", str(out), out=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_full_disk_tmpfs(portrait, driver_1s, tmp_path):
    """A real ENOSPC: a 12 kB tmpfs (needs root and mount; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        out = mnt / "out.mp4"
        line = assert_fails(run_cli("animate", portrait, driver_1s, "-o", out), 4, "cannot write", out=out)
        assert "space" in line.lower(), line
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)])


def test_output_equal_to_an_input(portrait, driver_1s, tmp_path):
    drv = tmp_path / "drv.mp4"
    shutil.copy(driver_1s, drv)
    before = drv.read_bytes()
    assert_fails(run_cli("animate", portrait, drv, "-o", drv), 4, "overwrite an input")
    assert drv.read_bytes() == before
    # The same file under other spellings of its path: relative with "..", a symlink.
    (tmp_path / "sub").mkdir()
    assert_fails(run_cli("animate", portrait, drv, "-o", "sub/../drv.mp4", cwd=tmp_path), 4, "overwrite an input")
    (tmp_path / "link.mp4").symlink_to(drv)
    assert_fails(run_cli("animate", portrait, drv, "-o", tmp_path / "link.mp4"), 4, "overwrite an input")
    assert drv.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drv.mp4", "link.mp4", "sub"]
