"""Weights files: safetensors round trip, and every bad file refused without unpickling."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from talkanim.errors import WeightsError
from talkanim.model import ModelConfig, TalkingHeadModel, load_weights, save_weights

MICRO = ModelConfig(mode="hybrid", image_size=32, base_channels=8, max_channels=16, embed_dim=16,
                    num_res_blocks=1, attention_at=8)


def _tensors():
    return {"a": torch.arange(12, dtype=torch.float32).view(3, 4), "b": torch.ones(5, dtype=torch.int64)}


def test_roundtrip_and_sha(tmp_path):
    path = tmp_path / "w.safetensors"
    sha = save_weights(path, _tensors(), {"k": "v"})
    tensors, meta = load_weights(path, expected_sha256=sha)
    assert meta == {"k": "v"}
    assert all(torch.equal(tensors[k], v) for k, v in _tensors().items())
    assert not [p for p in tmp_path.iterdir() if p.name != "w.safetensors"]  # no temp files left


def test_tampered_byte_is_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    sha = save_weights(path, _tensors(), {})
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the tensor data: header still valid
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_weights(path, expected_sha256=sha)


def test_truncated_and_garbage_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, _tensors(), {})
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(WeightsError, match="truncated"):
        load_weights(path)
    path.write_bytes(data[:5])
    with pytest.raises(WeightsError):
        load_weights(path)
    path.write_bytes(data[:8] + b"{not json" + data[17:])
    with pytest.raises(WeightsError, match="header"):
        load_weights(path)
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsError):
        load_weights(path)
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")


class _Exploit:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_never_loaded(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(WeightsError, match="pickle"):
        load_weights(path)
    assert not marker.exists()
    torch.save({"x": torch.ones(3), "evil": _Exploit(str(marker))}, path)  # zip + pickle inside
    with pytest.raises(WeightsError, match="safetensors"):
        TalkingHeadModel.from_weights(path)
    assert not marker.exists()


def test_model_save_load_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = TalkingHeadModel(MICRO, num_videos=3).eval()
    with torch.no_grad():  # make the output depend on every weight, including G's zero head
        model.generator.head.weight.normal_(0, 0.1)
    path = tmp_path / "model.safetensors"
    sha = model.save(path)
    loaded = TalkingHeadModel.from_weights(path, expected_sha256=sha)
    assert loaded.config == MICRO and loaded.discriminator.num_videos == 3
    pts = torch.rand(2, 68, 2) * 20 + 6
    imgs, warped = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for m in (model, loaded):
            e = m.embed(imgs, pts)
            m.out = m.generate(pts, None, m.generator.project(e[None])[0], warped)
            m.score = m.discriminator(warped, m.sketch(pts), torch.tensor([0, 2]))[0]
    assert torch.equal(model.out, loaded.out) and torch.equal(model.score, loaded.score)
    # Inference-only load drops the discriminator.
    assert TalkingHeadModel.from_weights(path, discriminator=False).discriminator is None


def test_model_file_with_wrong_format_is_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, _tensors(), {"format": "something-else"})
    with pytest.raises(WeightsError, match="not a talkanim model"):
        TalkingHeadModel.from_weights(path)
    assert os.path.exists(path)
