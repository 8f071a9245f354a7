"""The model's shape in one frozen dataclass: every width and resolution comes from here.

A config travels inside the weights file (as JSON in the safetensors metadata) so a file alone
is enough to rebuild the networks it holds.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

ModelModeName = Literal["paper", "hybrid"]
BlendRegion = Literal["mouth_eyes", "full"]


@dataclass(frozen=True)
class ModelConfig:
    """Widths and resolutions of the embedder, generator and discriminator.

    - mode: "paper" paints the crop from the sketch; "hybrid" corrects a warped source crop.
    - image_size: side of the square face crop the networks see (power of two, >= 32).
    - base_channels / max_channels: width at full resolution, doubling per down-sampling up to
      the cap.
    - embed_dim: size of the identity vector e^ (and of the discriminator's W rows).
    - num_res_blocks: AdaIN residual blocks in the generator's bottleneck.
    - attention_at: resolution where each network has its one self-attention block.
    - blend_region (hybrid only): "mouth_eyes" limits the blend mask to dilated mouth and eye
      regions built from the target landmarks (measured: a net free to touch the whole crop
      blurred unseen faces); "full" lets it touch anything.
    - normalize_embedding: scale each shot's e to unit root-mean-square. Without it the sum
      pooling let |e| grow from 7 to 1400 in 400 content-only steps (measured), the AdaIN
      scales P e followed, and the hybrid's blend mask saturated shut (logits near -30), so the
      network stopped learning. False only for files written before this existed.
    """

    mode: ModelModeName = "hybrid"
    image_size: int = 128
    base_channels: int = 16
    max_channels: int = 128
    embed_dim: int = 128
    num_res_blocks: int = 2
    attention_at: int = 16
    blend_region: BlendRegion = "mouth_eyes"
    normalize_embedding: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("paper", "hybrid"):
            raise ValueError(f"mode must be 'paper' or 'hybrid', not {self.mode!r}")
        if self.image_size < 32 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 32, not {self.image_size}")
        if not 4 <= self.attention_at <= self.image_size // 2 or self.attention_at & (self.attention_at - 1):
            raise ValueError(f"attention_at must be a power of two in [4, {self.image_size // 2}]")
        if self.blend_region not in ("mouth_eyes", "full"):
            raise ValueError(f"blend_region must be 'mouth_eyes' or 'full', not {self.blend_region!r}")

    # Derived sizes, so all three networks agree on them.
    @property
    def num_down(self) -> int:
        """Down-sampling steps of the embedder / discriminator: image_size -> 4 px."""
        return int(math.log2(self.image_size)) - 2

    @property
    def generator_down(self) -> int:
        """Down-sampling steps of the generator's encoder: image_size -> image_size / 8."""
        return 3

    def channels(self, level: int) -> int:
        """Channels after `level` down-samplings (level 0 = full resolution)."""
        return min(self.base_channels * 2**level, self.max_channels)

    def to_dict(self) -> dict:
        """JSON-safe dict (stored in weights metadata)."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Inverse of `to_dict`; unknown keys are ignored so newer files still load."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


PRESETS: dict[str, ModelConfig] = {
    # Trains on 2 CPU cores: 128 px, 16 channels at full resolution. Attention at 16 px: at
    # 32 px (1024 tokens) it alone took over half the embedder's CPU time.
    "tiny": ModelConfig(image_size=128, base_channels=16, max_channels=128, embed_dim=128,
                        num_res_blocks=2, attention_at=16, normalize_embedding=True),
    # A middle step: still CPU-trainable overnight, comfortable on one GPU.
    "small": ModelConfig(image_size=128, base_channels=32, max_channels=256, embed_dim=256,
                         num_res_blocks=3, attention_at=16, normalize_embedding=True),
    # The paper's sizes: 256 px crops, 512-d embedding, 64 -> 512 channels, attention at 32 px.
    "paper": ModelConfig(image_size=256, base_channels=64, max_channels=512, embed_dim=512,
                         num_res_blocks=5, attention_at=32, normalize_embedding=True),
}


def preset(name: str, mode: str = "hybrid") -> ModelConfig:
    """The named preset ("tiny", "small", "paper") in the given mode ("paper" or "hybrid")."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], mode=mode)
