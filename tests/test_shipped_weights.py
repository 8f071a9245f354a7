"""The meta-learned weights that ship with talkanim: found, verified, packaged, used by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from talkanim.errors import WeightsError
from talkanim.model import TalkingHeadModel
from talkanim.model.shipped import resolve_weights, shipped_weights, weights_dir
from talkanim.model.weights import sha256_bytes

MODES = ("hybrid", "paper")


@pytest.mark.parametrize("mode", MODES)
def test_shipped_weights_load_and_verify(mode):
    found = shipped_weights(mode)
    assert found is not None, f"no {mode} weights in {weights_dir()}"
    path, sha = found
    assert sha256_bytes(path.read_bytes()) == sha
    model = TalkingHeadModel.from_weights(path, expected_sha256=sha)
    assert model.config.mode == mode and model.discriminator is not None


def test_tampered_shipped_weights_are_refused(tmp_path):
    path, sha = shipped_weights("hybrid")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the tensor data
    tampered = tmp_path / "hybrid.safetensors"
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        TalkingHeadModel.from_weights(tampered, expected_sha256=sha)


def test_weights_are_package_data(tmp_path):
    """A wheel (what `pip install .` installs) carries the weights and their manifest."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, cwd=weights_dir().parents[1], timeout=300)
    wheel = next(tmp_path.glob("talkanim-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    manifest = json.loads((weights_dir() / "weights.json").read_text())
    for entry in manifest.values():
        assert f"talkanim/weights/{entry['file']}" in names
    assert "talkanim/weights/weights.json" in names
    # the converted MediaPipe models of the mesh backend and the matte, with their licence
    mediapipe = weights_dir() / "mediapipe"
    for name in json.loads((mediapipe / "manifest.json").read_text()):
        assert f"talkanim/weights/mediapipe/{name}" in names
    for name in ("manifest.json", "LICENSE", "README.md"):
        assert f"talkanim/weights/mediapipe/{name}" in names


@pytest.fixture(scope="module")
def tiny_driver(tmp_path_factory, example_driver):
    """Eight frames of the example clip, no sound: enough for a run that says which model it used."""
    from tests.content import read_frames, write_video

    return write_video(tmp_path_factory.mktemp("tiny") / "driver8.mp4", read_frames(example_driver)[:8], 25)


def install_with_manifest(folder, manifest: dict) -> dict:
    """A copy of the talkanim package under `folder` whose weights.json is `manifest` (the
    shipped weight files linked, not copied); returns the environment that runs it."""
    import shutil

    import talkanim

    package = Path(talkanim.__file__).parent
    site = folder / "site"
    shutil.copytree(package, site / "talkanim", ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    for weights in package.rglob("*.safetensors"):  # the networks and the face mesh's models
        (site / "talkanim" / weights.relative_to(package)).symlink_to(weights)
    (site / "talkanim" / "weights" / "weights.json").write_text(json.dumps(manifest))
    env = {k: v for k, v in os.environ.items() if k not in ("TALKANIM_MODEL", "PYTHONPATH")}
    return {**env, "PYTHONPATH": str(site), "TALKANIM_FINETUNE_STEPS": "0"}


@pytest.mark.parametrize("default", [None, "hybrid"])
def test_auto_model_follows_the_manifest(tmp_path, example_portrait, tiny_driver, default):
    """`--model auto` (the default) runs the shipped mode whose manifest entry says `default`, and
    the warp alone when none does: checked with manifests the test writes, one each way."""
    manifest = json.loads((weights_dir() / "weights.json").read_text())
    for mode, entry in manifest.items():
        entry["default"] = mode == default
    env = install_with_manifest(tmp_path, manifest)
    where = subprocess.run([sys.executable, "-c", "import talkanim; print(talkanim.__file__)"], capture_output=True,
                           env=env, cwd=tmp_path, text=True).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "site"), where  # the copy runs, with its manifest
    out = tmp_path / "auto.mp4"
    proc = subprocess.run([sys.executable, "-m", "talkanim", "animate", str(example_portrait), str(tiny_driver),
                           "-o", str(out), "--json"], capture_output=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["model"] == (default or "none")
    if default is None:
        assert "--model hybrid to try them" in proc.stderr.decode()
    else:
        assert "model: hybrid, fine-tuned 0 steps" in proc.stderr.decode()


def test_model_and_finetune_steps_come_from_the_environment(tmp_path, example_portrait, tiny_driver):
    """TALKANIM_MODEL and TALKANIM_FINETUNE_STEPS act like --model and --finetune-steps."""
    from tests.content import run_cli

    env = {**os.environ, "TALKANIM_MODEL": "hybrid", "TALKANIM_FINETUNE_STEPS": "0"}  # default: none, ~150 steps
    proc = run_cli("animate", example_portrait, tiny_driver, "-o", tmp_path / "hybrid.mp4", "--json", env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["model"] == "hybrid" and "model: hybrid, fine-tuned 0 steps" in proc.stderr.decode()


def test_the_installed_manifest_says_what_the_readme_says():
    """README: the shipped weights do not beat the warp, "so the default is the warp alone"."""
    from talkanim.model.shipped import default_mode

    assert default_mode() is None
    assert not any(entry.get("default") for entry in json.loads((weights_dir() / "weights.json").read_text()).values())


def test_explicit_hybrid_uses_the_shipped_weights(tmp_path, example_portrait, tiny_driver):
    """`--model hybrid` fine-tunes the shipped hybrid and its correction shows in the output.
    Compared with a hybrid whose network is the identity (same pipeline: no mouth fill, the
    network's correction is the only difference): in the mouth and eyes the frames differ by
    2.6-3.6 levels (measured), elsewhere only by the encoder's spread (0.21)."""
    from talkanim.model.config import preset
    from tests.content import read_frames, run_cli, track
    from tests.test_cli import mouth_and_eyes

    identity = tmp_path / "identity.safetensors"
    TalkingHeadModel(preset("tiny", "hybrid"), discriminator=False).save(identity)
    outputs = {}
    for name, options in (("identity", ("--weights", identity, "--finetune-steps", "0")),
                          ("shipped", ("--finetune-steps", "2"))):
        outputs[name] = tmp_path / f"{name}.mp4"
        proc = run_cli("animate", example_portrait, tiny_driver, "-o", outputs[name], "--json", "--model", "hybrid", *options)
        assert proc.returncode == 0, proc.stderr.decode()
        assert json.loads(proc.stdout)["model"] == "hybrid"
    assert "fine-tuned 2 steps" in proc.stderr.decode()
    base, shipped = (read_frames(outputs[n]).astype(int) for n in ("identity", "shipped"))
    points = track(base)
    for k in range(len(base)):
        change = np.abs(shipped[k] - base[k]).mean(axis=-1)
        inside = mouth_and_eyes(points[k], change.shape)
        far = ~mouth_and_eyes(points[k], change.shape, grow=0.6)
        assert change[inside].mean() > 1.5 and change[far].mean() < 0.5, (k, change[inside].mean(), change[far].mean())


def test_resolve_weights_prefers_an_explicit_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("hybrid", tmp_path / "missing.safetensors")
    path, sha = resolve_weights("hybrid")
    assert sha is not None and path.parent == weights_dir()
