"""`talkanim train` stopped by Ctrl-C or SIGTERM: exits 130 / 143 within seconds, leaves its last
complete checkpoint intact and no temporary files, and `--resume` continues from it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rb_helpers import EXAMPLES, cli_cmd, run_cli, stderr_of

from tests.test_train_cli import make_clips

TRAIN_ARGS = ("--image-size", "64", "--shots", "2", "--batch-size", "2", "--checkpoint-every", "1", "--device", "cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_data")
    clips = make_clips(EXAMPLES / "driver.mp4", folder)
    out = folder / "dataset"
    proc = run_cli("prepare", *clips, "-o", out, "--image-size", "64", "--frames-per-video", "8", "--val-fraction", "0")
    assert proc.returncode == 0, stderr_of(proc)
    return out


def _latest_step(run: Path) -> int | None:
    latest = run / "checkpoints" / "latest.json"
    return json.loads(latest.read_text())["step"] if latest.is_file() else None


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_train_interrupted_then_resumed(dataset, tmp_path, sig, code, word):
    run = tmp_path / "run"
    proc = subprocess.Popen(cli_cmd("train", dataset, "-o", run, "--max-steps", "400", *TRAIN_ARGS),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while (_latest_step(run) or 0) < 2:  # a few complete checkpoints written
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "training never wrote a checkpoint"
        time.sleep(0.1)
    sent = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=30)
    took = time.monotonic() - sent
    err = proc.stderr.read().decode()
    assert proc.returncode == code, err
    assert f"error: {word}" in err and "Traceback" not in err, err
    assert took < 5, f"took {took:.1f} s to stop"
    stopped_at = _latest_step(run)
    assert stopped_at is not None and stopped_at < 400
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]

    resumed = run_cli("train", dataset, "-o", run, "--max-steps", str(stopped_at + 2), "--resume", "--json", *TRAIN_ARGS)
    assert resumed.returncode == 0, stderr_of(resumed)
    assert json.loads(resumed.stdout)["step"] == stopped_at + 2
