"""Training checkpoints without pickle, written atomically.

A checkpoint is a folder `CKPT_ROOT/step-00001234/` holding
    weights.safetensors  every module's state dict, keys "<module>.<param>"
    optim.safetensors    every optimizer's state tensors, keys "<optimizer>.<param id>.<name>",
                         and the RNG states (torch's ByteTensor, numpy's and python's key arrays)
    state.json           written last: step, optimizer structure (param groups, scalar state),
                         RNG scalars, and the caller's JSON state. Its presence marks a complete
                         checkpoint.
The folder is built under a temporary name and renamed into place (atomic on POSIX), then
`latest.json` is replaced atomically to point at it. An interrupted save therefore leaves the
previous checkpoint and pointer untouched, and at worst a temporary folder that the next save
removes.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from talkanim.io.atomic import atomic_output

FORMAT = "talkanim-train-checkpoint/1"
_TMP_PREFIX = ".tmp-"


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(root: Path, step: int, *, modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer], state: dict[str, Any] | None = None,
                    keep: int = 2) -> Path:
    """Write a complete checkpoint for `step` under `root` and point `latest.json` at it.

    Keeps the newest `keep` complete checkpoints (0 keeps all). Returns the checkpoint folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(root)
    final = root / checkpoint_name(step)
    tmp = root / f"{_TMP_PREFIX}{checkpoint_name(step)}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        weights = {f"{name}.{k}": _plain(v) for name, m in modules.items() for k, v in m.state_dict().items()}
        save_file(weights, str(tmp / "weights.safetensors"))
        tensors: dict[str, torch.Tensor] = {}
        optim_json = {name: _flatten_optimizer(name, opt, tensors) for name, opt in optimizers.items()}
        rng_json = _capture_rng(tensors)
        save_file(tensors, str(tmp / "optim.safetensors"))
        doc = {"format": FORMAT, "step": int(step), "optimizers": optim_json, "rng": rng_json,
               "modules": sorted(modules), "state": state or {}}
        (tmp / "state.json").write_text(json.dumps(doc, indent=1))
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. budget stop right after a save)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with atomic_output(root / "latest.json") as t:
        t.write_text(json.dumps({"step": int(step), "path": final.name}))
    if keep > 0:
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root` (those with a state.json), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint `latest.json` names, or the newest complete one if the pointer is missing
    or stale; None when there is none."""
    root = Path(root)
    try:
        pointer = json.loads((root / "latest.json").read_text())
        path = root / pointer["path"]
        if (path / "state.json").is_file():
            return path
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(path: Path, *, modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    restore_rng: bool = True, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint folder into `modules` and `optimizers` (in place); return its JSON
    document ("step", "state", ...). Only safetensors and JSON are read: never pickle."""
    path = Path(path)
    doc = json.loads((path / "state.json").read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"not a talkanim training checkpoint: {path}")
    weights = load_file(str(path / "weights.safetensors"), device=str(device))
    for name, module in modules.items():
        prefix = f"{name}."
        sub = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        module.load_state_dict(sub, strict=True)
    tensors = load_file(str(path / "optim.safetensors"))
    for name, opt in (optimizers or {}).items():
        opt.load_state_dict(_unflatten_optimizer(name, doc["optimizers"][name], tensors))
    if restore_rng:
        _restore_rng(doc["rng"], tensors)
    return doc


# ---------------------------------------------------------------------------------------------
def _plain(t: torch.Tensor) -> torch.Tensor:
    # safetensors refuses shared or non-contiguous storage; a CPU copy is neither.
    return t.detach().to("cpu", copy=True).contiguous()


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Optimizer state dict -> tensors (added to `tensors`) + a JSON structure."""
    sd = opt.state_dict()
    state_json: dict[str, dict[str, Any]] = {}
    for pid, entries in sd["state"].items():
        slot: dict[str, Any] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{name}.{pid}.{key}"] = _plain(value)
                slot[key] = {"tensor": True}
            else:
                slot[key] = {"value": value}
        state_json[str(pid)] = slot
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return {"state": state_json, "param_groups": groups}


def _unflatten_optimizer(name: str, doc: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state = {}
    for pid, slot in doc["state"].items():
        state[int(pid)] = {key: (tensors[f"{name}.{pid}.{key}"] if spec.get("tensor") else spec["value"])
                           for key, spec in slot.items()}
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in doc["param_groups"]]
    return {"state": state, "param_groups": groups}


def _capture_rng(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy.keys"] = torch.from_numpy(np.asarray(keys, np.int64))
    version, internal, gauss_next = random.getstate()
    tensors["rng.python.state"] = torch.tensor(internal, dtype=torch.int64)
    return {"numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": {"version": version, "gauss_next": gauss_next}}


def _restore_rng(doc: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    n = doc["numpy"]
    np.random.set_state((n["kind"], tensors["rng.numpy.keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = doc["python"]
    random.setstate((p["version"], tuple(int(x) for x in tensors["rng.python.state"].tolist()), p["gauss_next"]))


def _remove_temporaries(root: Path) -> None:
    for p in root.glob(f"{_TMP_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    # Make the files' contents durable before the rename publishes them.
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
