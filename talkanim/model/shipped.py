"""The meta-learned weights that ship inside the package (`talkanim/weights/`).

`weights.json` beside them lists each file with its sha256; a file whose hash differs is
refused at load time (`load_weights` checks it), so a corrupted install says so clearly. An
entry's `default` says whether `--model auto` uses it: only weights that beat the warp on the
validation identities (`talkanim evaluate`) should be the default.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

from talkanim.errors import WeightsError

MANIFEST = "weights.json"


def weights_dir() -> Path:
    """The folder of shipped weights, inside the installed package."""
    return Path(str(importlib.resources.files("talkanim") / "weights"))


def _manifest() -> dict:
    manifest = weights_dir() / MANIFEST
    if not manifest.is_file():
        return {}
    try:
        return json.loads(manifest.read_text())
    except (OSError, ValueError) as error:
        raise WeightsError(f"unreadable weights manifest {manifest}: {error}") from None


def default_mode() -> str | None:
    """The model mode `--model auto` runs: a shipped entry marked `default`, else None (warp)."""
    return next((mode for mode, entry in _manifest().items() if entry.get("default")), None)


def shipped_weights(mode: str) -> tuple[Path, str] | None:
    """(path, sha256) of the shipped weights for `mode` ("hybrid" or "paper"), or None."""
    entry = _manifest().get(mode)
    if not entry:
        return None
    return weights_dir() / entry["file"], entry["sha256"]


def resolve_weights(mode: str, override: str | Path | None = None) -> tuple[Path, str | None]:
    """The weights file to use for `mode`: `override` (a file, or a training run folder holding
    model.safetensors) when given, else the shipped file with its expected sha256."""
    if override is not None:
        path = Path(override)
        path = path / "model.safetensors" if path.is_dir() else path
        if not path.is_file():
            raise WeightsError(f"weights not found: {path}")
        return path, None
    found = shipped_weights(mode)
    if found is None:
        raise WeightsError(f"no {mode} weights ship with this install; pass --weights FILE or use --model none")
    return found
