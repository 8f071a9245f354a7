"""The meta-learned weights that ship with talkanim: found, verified, packaged, used by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

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


def test_auto_model_follows_the_manifest(tmp_path, example_portrait, example_driver):
    """`--model auto` runs the shipped mode marked default, and warp only when none is."""
    from talkanim.model.shipped import default_mode

    env = {k: v for k, v in os.environ.items() if k != "TALKANIM_MODEL"}
    env["TALKANIM_FINETUNE_STEPS"] = "2"
    out = tmp_path / "default.mp4"
    proc = subprocess.run([sys.executable, "-m", "talkanim", "animate", str(example_portrait), str(example_driver),
                           "-o", str(out), "--json"], capture_output=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()
    expected = default_mode() or "none"
    assert json.loads(proc.stdout)["model"] == expected
    if expected == "none":
        assert "--model hybrid to try them" in proc.stderr.decode()


def test_explicit_hybrid_uses_the_shipped_weights(tmp_path, example_portrait, example_driver):
    out = tmp_path / "hybrid.mp4"
    proc = subprocess.run([sys.executable, "-m", "talkanim", "animate", str(example_portrait), str(example_driver),
                           "-o", str(out), "--json", "--model", "hybrid", "--finetune-steps", "2"],
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["model"] == "hybrid"
    assert "fine-tuned 2 steps" in proc.stderr.decode()


def test_resolve_weights_prefers_an_explicit_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("hybrid", tmp_path / "missing.safetensors")
    path, sha = resolve_weights("hybrid")
    assert sha is not None and path.parent == weights_dir()
