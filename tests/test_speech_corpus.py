"""The speech training and lip-sync commands on real clips of the shared data (skipped without it)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import content

pytestmark = pytest.mark.shared_data

AOC = ("videos/OpenTalker__SadTalker/WDA_AlexandriaOcasioCortez_000.mp4", "videos/OpenTalker__video-retalking/face_3.mp4")
GRID = ("videos/rizkiarm__LipNet/bbaf2n.mp4", "videos/rizkiarm__LipNet/lwbsza.mp4", "videos/rizkiarm__LipNet/swiz3n.mp4")
NC = "videos/filby89__spectre/W036_level_3_happy_007.mp4"  # CC BY-NC-SA: may not train shipped weights


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return content.run_cli(*args, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def dataset(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("speech") / "data"
    clips = [data_dir / p for p in (*AOC, *GRID, NC)]
    proc = run_cli("prepare-speech", *clips, "--licences", data_dir / "MANIFEST.tsv", "-o", out,
                   "--cache", out.parent / "tracks", "--val-fraction", "0.3", "--json", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    return out


def test_prepare_splits_by_person_and_licence(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    by_name = {c["name"]: c for c in manifest["clips"]}
    aoc = [by_name[f"{Path(p).parent.name}/{Path(p).stem}"] for p in AOC]
    # two clips of one woman from two repositories: one person, never on both sides of a split
    assert aoc[0]["person"] == aoc[1]["person"] and aoc[0]["split"] == aoc[1]["split"]
    assert by_name["filby89__spectre/W036_level_3_happy_007"]["split"] == "test"
    people = manifest["people"]
    assert not set(people["train"]) & set(people["val"]) and len(people["val"]) >= 1
    assert len({c["person"] for c in manifest["clips"]}) == 5  # 6 clips, 5 people


def test_train_speech_writes_weights_speak_can_use(dataset, tmp_path, astronaut):
    from PIL import Image

    run = tmp_path / "run"
    proc = run_cli("train-speech", dataset, "-o", run, "--steps", "30", "--json", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    summary = json.loads(proc.stdout)
    assert summary["default"] in ("learned", "loudness")
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["summary"]) == {"val", "test"}
    portrait = tmp_path / "p.png"
    Image.fromarray(astronaut).resize((192, 192)).save(portrait)
    speech = dataset.parent.parent / "speech.wav"
    from tests.speech_helpers import synthetic_speech, write_wav

    write_wav(speech, synthetic_speech(1.0))
    out = tmp_path / "o.mp4"
    proc = run_cli("speak", portrait, speech, "--speech-weights", run, "--mouth", "learned", "-o", out, "-q")
    assert proc.returncode == 0 and out.is_file(), proc.stderr.decode()


def test_lipsync_protocol_on_a_held_out_clip(data_dir, tmp_path):
    """The shipped model on a studio sentence of a person it never trained on: the report has
    both methods and the network follows the real mouth."""
    proc = run_cli("evaluate", data_dir / "videos/rizkiarm__LipNet/lwbsza.mp4", data_dir / NC, "--lipsync",
                   "-o", tmp_path / "lipsync", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    results = json.loads((tmp_path / "lipsync" / "results.json").read_text())
    summary = results["summary"]
    assert {"learned", "loudness", "versus"} <= set(summary)
    grid = results["clips"][0]["scores"]
    assert grid["learned"]["r"] > 0.4 and abs(grid["learned"]["lag"]) <= 2
    assert "| learned |" in (tmp_path / "lipsync" / "report.md").read_text()


def test_cross_validation_holds_out_every_person_once(dataset, tmp_path):
    run = tmp_path / "cv"
    proc = run_cli("train-speech", dataset, "-o", run, "--folds", "2", "--steps", "20", "--json", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    verdict = json.loads(proc.stdout)
    result = json.loads((run / "cross_validation.json").read_text())
    manifest = json.loads((dataset / "manifest.json").read_text())
    trainable = [c for c in manifest["clips"] if c["split"] in ("train", "val")]
    people = {c["person"] for c in trainable}
    folds = result["people"]
    assert len(folds) == 2 and sorted(p for f in folds for p in f["val"]) == sorted(people)  # each held out once
    assert all(not set(f["train"]) & set(f["val"]) and set(f["train"]) | set(f["val"]) == people for f in folds)
    assert sorted(c["clip"] for c in result["clips"]) == sorted(c["name"] for c in trainable)  # no test clip
    assert verdict["clips"] == len(trainable) and {"learned_r", "loudness_r"} <= set(verdict)
    assert not (run / "speech.safetensors").exists()  # scores only
    proc = run_cli("train-speech", dataset, "-o", run, "--folds", "9", "--steps", "20", "-q")
    assert proc.returncode == 2 and b"--folds must be between 2" in proc.stderr
