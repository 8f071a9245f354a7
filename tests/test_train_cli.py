"""`talkanim prepare` -> `talkanim train` -> `talkanim animate --weights RUN` from the command
line, on videos the test makes from the shipped example (no shared data needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from talkanim.io import VideoWriter, iter_frames, probe_video
from tests.test_cli import run_cli


def make_clips(example_driver: Path, folder: Path) -> list[Path]:
    """Two 'people': the example driver and its mirror image, 40 frames each."""
    info = probe_video(example_driver)
    clips = [folder / "person_a.mp4", folder / "person_b.mp4"]
    writers = [VideoWriter(c, info.width, info.height, info.fps) for c in clips]
    with writers[0], writers[1]:
        for i, frame in enumerate(iter_frames(example_driver, info=info)):
            if i == 40:
                break
            writers[0].write(frame)
            writers[1].write(np.ascontiguousarray(frame[:, ::-1]))
    return clips


def test_prepare_train_animate(tmp_path, example_driver, example_portrait):
    clips = make_clips(example_driver, tmp_path)
    dataset = tmp_path / "dataset"
    proc = run_cli("prepare", *clips, "-o", dataset, "--image-size", "64", "--frames-per-video", "12",
                   "--val-fraction", "0", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    summary = json.loads(proc.stdout)
    assert summary["videos"] == 2 and summary["skipped"] == 0
    assert (dataset / "manifest.json").is_file()

    run = tmp_path / "run"
    proc = run_cli("train", dataset, "-o", run, "--image-size", "64", "--shots", "2", "--batch-size", "2",
                   "--max-steps", "4", "--checkpoint-every", "2", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["step"] == 4 and Path(result["weights"]).is_file()

    proc = run_cli("train", dataset, "-o", run, "--image-size", "64", "--shots", "2", "--batch-size", "2",
                   "--max-steps", "6", "--resume", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["step"] == 6
    assert re.search(r"l1 0\.\d{4} msssim 0\.\d{4} adv -?\d", proc.stderr.decode())  # losses on the bar

    out = tmp_path / "trained.mp4"
    proc = run_cli("animate", example_portrait, clips[0], "-o", out, "--model", "hybrid", "--weights", run,
                   "--finetune-steps", "2", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["model"] == "hybrid"
    assert abs(probe_video(out).num_frames - 40) <= 1


def test_prepare_keeps_the_longest_camera_shot(tmp_path, edited_clip, example_driver):
    """Frames of an edited video come from one continuous shot: an episode takes them all as
    one person, and before the cut this clip shows someone else."""
    from talkanim.train.prepare import load_shard, prepare_dataset

    report = prepare_dataset([edited_clip, example_driver], tmp_path / "ds", image_size=64, frames_per_video=16,
                             val_fraction=0)
    edited, plain = report.videos
    assert edited.span == (24, 124) and plain.span is None
    frames = load_shard(tmp_path / "ds", {"shard": edited.shard})["frame_index"]
    assert len(frames) == 16 and int(frames.min()) >= 24
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["videos"][0]["span"] == [24, 124]
