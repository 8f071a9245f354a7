"""The graph runner: MediaPipe's converted networks in torch against the original TFLite models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from talkanim.errors import WeightsError
from talkanim.landmarks.tfgraph import TFGraph, load_shipped, same_padding


# -- the graph runner against the original TFLite models ----------------------------------

def _astronaut_inputs(astronaut) -> dict[str, np.ndarray]:
    """Deterministic network inputs cut from the astronaut by slicing only (no resampling)."""
    a = astronaut.astype(np.float32)
    return {
        "face_landmark": a[30:222, 120:312] / 255,  # the face, 192 x 192
        "iris_landmark": a[69:133, 171:235] / 255,  # her right eye (image left), 64 x 64
        "selfie_segmentation": a[::2, ::2] / 255,  # the whole picture at 256 x 256
        "face_detection_short_range": a[::4, ::4] / 127.5 - 1,  # 128 x 128 in [-1, 1]
    }


def _run(name: str, x: np.ndarray) -> list[np.ndarray]:
    graph = load_shipped(name)
    with torch.inference_mode():
        outs = graph(torch.from_numpy(x)[None].permute(0, 3, 1, 2))
    return [o[0].numpy() for o in outs]


# The reference numbers below were made once by running the original .tflite files of the
# mediapipe 0.10.21 wheel in the TFLite interpreter (ai-edge-litert 2.3.0, XNNPACK) on the
# inputs of `_astronaut_inputs`. Our runner agreed to < 3e-4 (landmark coordinates, in input
# pixels) and < 7e-5 (probabilities) on those and on 8 real crops per model.

def test_face_landmark_matches_tflite(astronaut):
    lm, flag = _run("face_landmark", _astronaut_inputs(astronaut)["face_landmark"])
    lm = lm.reshape(468, 3)
    expected = {1: (102.8377, 101.0368, -24.6342), 33: (70.7537, 71.3148, 5.4838),
                263: (138.7705, 73.7160, 4.6886), 152: (101.5361, 149.3544, 8.4209)}
    for vertex, xyz in expected.items():
        np.testing.assert_allclose(lm[vertex], xyz, atol=0.01)
    assert float(flag.ravel()[0]) == pytest.approx(22.84179, abs=0.01)


def test_iris_landmark_matches_tflite(astronaut):
    contour, iris = _run("iris_landmark", _astronaut_inputs(astronaut)["iris_landmark"])
    contour, iris = contour.reshape(71, 3), iris.reshape(5, 3)
    np.testing.assert_allclose(contour[[0, 8, 12]], [(24.5618, 31.6627, 3.7561), (42.9405, 34.7777, 1.4515),
                                                     (32.1585, 28.7378, -1.3100)], atol=0.01)
    np.testing.assert_allclose(iris[[0, 1, 3], :2], [(32.7422, 31.6548), (36.9027, 31.8893), (28.4527, 31.4031)],
                               atol=0.01)


def test_selfie_segmentation_matches_tflite(astronaut):
    (prob,) = _run("selfie_segmentation", _astronaut_inputs(astronaut)["selfie_segmentation"])
    prob = prob[..., 0]
    assert prob.shape == (256, 256)
    assert float(prob.mean()) == pytest.approx(0.54185, abs=1e-3)
    assert float(prob[:64].mean()) == pytest.approx(0.20945, abs=1e-3)
    for y, x, p in [(7, 114, 0.23809), (172, 13, 0.49803), (230, 4, 0.52934), (255, 255, 0.47788)]:
        assert float(prob[y, x]) == pytest.approx(p, abs=2e-3)


def test_face_detection_matches_tflite(astronaut):
    boxes, scores = _run("face_detection_short_range", _astronaut_inputs(astronaut)["face_detection_short_range"])
    assert boxes.shape == (896, 16) and scores.shape == (896, 1)
    assert int(scores.argmax()) == 143
    assert float(scores[143, 0]) == pytest.approx(2.4662, abs=0.01)
    np.testing.assert_allclose(boxes[143, :4], (-3.8538, -3.0455, 23.9528, 23.9527), atol=0.01)
    assert float(scores.sum()) == pytest.approx(-12620.956, rel=1e-4)


def test_runner_is_batched_and_dtype_agnostic(astronaut):
    x = torch.from_numpy(_astronaut_inputs(astronaut)["iris_landmark"])[None].permute(0, 3, 1, 2)
    graph = load_shipped("iris_landmark")
    with torch.inference_mode():
        one = graph(x)[1]
        two = graph(torch.cat([x, x.flip(-1)]))[1]
        double = graph.to(torch.float64)(x.double())[1]
    assert two.shape == (2, 15)
    torch.testing.assert_close(two[:1], one, atol=1e-4, rtol=0)
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), one, atol=1e-3, rtol=0)


def test_tflite_same_padding_puts_the_extra_pixel_after():
    assert same_padding(192, 3, 2) == (0, 1)
    assert same_padding(64, 3, 1) == (1, 1)
    assert same_padding(128, 5, 2) == (1, 2)
    assert same_padding(7, 2, 2) == (0, 1)


def test_unknown_op_is_a_clear_error(tmp_path):
    graph = {"format": "talkanim-tfgraph", "version": 1, "source": "x.tflite", "inputs": [0], "outputs": [1],
             "tensors": {"0": {"name": "in", "shape": [1, 4, 4, 1]}, "1": {"name": "out", "shape": [1, 4, 4, 1]}},
             "ops": [{"op": "SQUARED_DIFFERENCE", "inputs": [0, 0], "outputs": [1], "options": {}}]}
    path = tmp_path / "model.safetensors"
    save_file({"t9": torch.zeros(1)}, str(path), metadata={"graph": json.dumps(graph)})
    with pytest.raises(WeightsError, match="SQUARED_DIFFERENCE"):
        TFGraph(path)


def test_damaged_shipped_model_is_refused(tmp_path, monkeypatch):
    from talkanim.landmarks import tfgraph

    src = tfgraph.shipped_dir()
    for f in src.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    data = bytearray((tmp_path / "iris_landmark.safetensors").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "iris_landmark.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(tfgraph, "shipped_dir", lambda: tmp_path)
    with pytest.raises(WeightsError, match="damaged"):
        tfgraph.load_shipped("iris_landmark")
