"""Which torch device a run uses: one rule for every stage."""

from __future__ import annotations

import torch

from talkanim.errors import BackendUnavailableError, InputError


def resolve_device(choice: str = "auto", local_rank: int = 0) -> torch.device:
    """"auto" -> CUDA when available, else the CPU; "cuda" -> cuda:LOCAL_RANK (one GPU per
    torchrun process), an error when there is none; "cpu" -> the CPU."""
    choice = str(choice)
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailableError("--device cuda: no CUDA GPU is available here")
        if choice == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device(choice)
    if choice != "cpu":
        raise InputError(f"unknown device {choice!r} (auto, cpu, cuda)")
    return torch.device("cpu")
