"""Embedder E(x, y) -> e^: one identity vector from a face crop and its landmark sketch.

Built like the discriminator (residual down blocks, self-attention, global sum pooling), then
a spectral-normalized linear layer to `embed_dim` (scaled to unit RMS when the config says so).
For T shots the caller averages the T vectors (`embed_shots` does it).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .layers import DownTrunk, sn


class Embedder(nn.Module):
    """E: (image, sketch) -> (B, embed_dim)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths = [config.channels(i) for i in range(config.num_down)]
        self.trunk = DownTrunk(6, config.image_size, widths, config.attention_at)
        self.out = sn(nn.Linear(self.trunk.out_channels, config.embed_dim))

    def forward(self, images: torch.Tensor, sketches: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) in [0, 1], sketches (B, 3, S, S) in [0, 1] -> (B, embed_dim)."""
        x = torch.cat([images * 2 - 1, sketches * 2 - 1], dim=1)
        pooled, _ = self.trunk(x)
        e = self.out(pooled)
        if self.config.normalize_embedding:  # unit root-mean-square: see ModelConfig
            e = e * torch.rsqrt(e.float().pow(2).mean(dim=1, keepdim=True) + 1e-8).to(e.dtype)
        return e

    def embed_shots(self, images: torch.Tensor, sketches: torch.Tensor) -> torch.Tensor:
        """images, sketches (B, T, 3, S, S) -> (B, embed_dim): mean over the T shots."""
        b, t = images.shape[:2]
        e = self(images.flatten(0, 1), sketches.flatten(0, 1))
        return e.view(b, t, -1).mean(dim=1)
