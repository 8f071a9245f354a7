"""Typed settings of the trainer: what `talkanim prepare` and `talkanim train` decide.

Plain dataclasses, so the CLI maps flags onto them one to one and tests build them directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from talkanim.model.losses import LossWeights

DeviceChoice = Literal["auto", "cpu", "cuda"]


@dataclass
class TrainConfig:
    """One meta-learning run (`talkanim train`)."""

    dataset: Path
    out_dir: Path
    preset: str = "tiny"  # model size, see talkanim.model.config.PRESETS
    mode: str = "hybrid"  # "hybrid" or "paper"
    image_size: int | None = None  # None: the preset's; smaller trains faster on a CPU
    shots: int = 8  # T: frames embedded per episode
    batch_size: int = 4  # episodes per step and per process
    lr_g: float = 5e-5  # embedder + generator (TTUR: slower than D)
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    max_steps: int = 1000  # total optimizer steps (a resumed run counts from its start)
    time_budget_s: float | None = None  # stop cleanly and checkpoint once this much wall time is spent
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 2  # older complete checkpoints are deleted
    resume: bool = False
    device: DeviceChoice = "auto"
    amp: bool = True  # bf16 autocast, used only on CUDA
    grad_clip: float | None = 1.0  # max global grad norm per network; None disables
    ema: bool = False  # keep an exponential moving average of G and export it
    ema_decay: float = 0.999
    loss: LossWeights = field(default_factory=LossWeights)  # the model's weights: adv, fm 10, mch 80, ...
    # False: content losses only (no discriminator step, no adversarial, feature-matching or
    # matching terms): a cheaper step on a CPU, for the hybrid, whose network only edits the
    # mouth and eyes of a warp.
    adversarial: bool = True
    log_every: int = 10
    # The last frames (in time) of every training video are never trained on: they are the
    # "held frames" the reconstruction metric is measured on.
    held_frames_per_video: int = 4
    eval_every: int = 0  # 0: evaluate the held-frame L1 only at the start and the end
    eval_videos: int = 8  # how many videos the held-frame metric averages over (at most)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dataset"], out["out_dir"] = str(self.dataset), str(self.out_dir)
        out["betas"] = list(self.betas)
        return out


@dataclass
class FinetuneConfig:
    """Few-shot fine-tuning of a meta-learned model on T shots of a new person."""

    steps: int | None = None  # None: default_finetune_steps(device, T)
    lr_g: float = 1e-4  # generator + person AdaIN parameters psi'
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 4  # shots per step (sampled with replacement when T is smaller)
    grad_clip: float | None = 1.0
    # None: the paper's content + adversarial losses on a GPU, content only on a CPU, where the
    # discriminator would take ~45% of each step of a one-minute budget (measured) and short
    # adversarial fine-tuning of the hybrid did not lower held-frame error.
    adversarial: bool | None = None
    # Stop after this many seconds even if `steps` are not done (None: no limit). The default
    # budget on a CPU sets it so fine-tuning ends in about a minute however loaded the machine.
    time_budget_s: float | None = None
    seed: int = 0
    loss: LossWeights = field(default_factory=LossWeights)  # mch is not used when fine-tuning
    # Share of the (target, source) pairs kept out of training; every `check_every` steps their
    # L1 is measured and the best step's weights are what fine-tuning returns (0: keep the last).
    held_fraction: float = 0.25
    check_every: int = 10
