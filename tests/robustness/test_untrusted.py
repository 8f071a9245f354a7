"""Untrusted files never run code: weights, person files, tracks; ffmpeg never via a shell."""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rb_helpers import REPO, assert_fails, run_cli, stderr_of


class _Payload:
    """Unpickling this creates `marker`: proof that a loader ran the file's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"weight": _Payload(marker)}, protocol=2)


def _evil_torch_zip(marker: Path) -> bytes:
    """What torch.save writes: a zip holding data.pkl (here with the payload)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", _evil_pickle(marker))
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


@pytest.mark.parametrize("make", [_evil_pickle, _evil_torch_zip], ids=["pickle", "torch-zip"])
def test_weights_loader_refuses_pickles(tmp_path, make):
    from talkanim.errors import WeightsError
    from talkanim.model.weights import load_weights

    marker = tmp_path / "PWNED"
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(make(marker))
    with pytest.raises(WeightsError, match="refusing to load it"):
        load_weights(evil)
    assert not marker.exists()


def _cli_has(option: str) -> bool:
    return option in stderr_of(run_cli("animate", "--help")) + run_cli("animate", "--help").stdout.decode()


@pytest.mark.parametrize("option", ["--weights", "--person"])
def test_cli_refuses_pickle_weights_and_person(option, portrait, driver_1s, tmp_path):
    if not _cli_has(option):
        pytest.skip(f"the CLI has no {option} yet")
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(_evil_pickle(marker))
    out = tmp_path / "out.mp4"
    line = assert_fails(run_cli("animate", portrait, driver_1s, "-o", out, "--model", "hybrid", option, evil), 5, out=out)
    # --person without installed weights fails earlier (no base model): still exit 5, nothing loaded.
    assert "not safetensors" in line or (option == "--person" and "weights" in line), line
    assert not marker.exists()


def test_track_with_pickled_object_array_refused(portrait, tmp_path):
    from talkanim.errors import InputError
    from talkanim.landmarks import load_track

    marker = tmp_path / "PWNED"
    evil = tmp_path / "track.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = _Payload(marker)
    np.savez(evil, format=np.array("talkanim-track"), version=np.array(1), points=obj,
             pupils=obj, valid=obj, fps=np.array(25.0), size=np.array([320, 320]), backend=np.array("dlib"))
    with pytest.raises(InputError, match="not a talkanim track file"):
        load_track(evil)
    assert not marker.exists()
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", portrait, evil, "-o", out), 2, "not a talkanim track file", out=out)
    assert not marker.exists()


def test_no_shell_and_no_unsafe_loaders_in_source():
    """ffmpeg and everything else get argument lists; no pickle-based loading of user files."""
    offenders = []
    for path in sorted((REPO / "talkanim").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(|commands\.getoutput", code):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
            if re.search(r"allow_pickle\s*=\s*True|pickle\.loads?\(", code):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
