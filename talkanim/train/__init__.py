"""Training: datasets from videos, meta-learning (the paper's episodes), few-shot fine-tuning,
atomic resumable checkpoints and torchrun/DDP setup.

Entry points for the CLI: `prepare_dataset`, `train`, `finetune`, `default_finetune_steps`.
Imports are lazy so `import talkanim.train` stays cheap.
"""

from __future__ import annotations

from typing import Any

from talkanim.train.config import FinetuneConfig, TrainConfig

__all__ = ["FinetuneConfig", "TrainConfig", "prepare_dataset", "PrepareReport", "train", "TrainResult",
           "finetune", "FineTuned", "default_finetune_steps", "reconstruct"]

_LAZY = {"prepare_dataset": "prepare", "PrepareReport": "prepare", "train": "meta", "TrainResult": "meta",
         "finetune": "finetune", "FineTuned": "finetune", "default_finetune_steps": "finetune",
         "reconstruct": "finetune"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"talkanim.train.{_LAZY[name]}"), name)
    raise AttributeError(name)
