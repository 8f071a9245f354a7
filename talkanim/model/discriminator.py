"""Projection discriminator D(x, y, i) = V(x, y)^T (W_i + w0) + b.

V is a conv net on the picture concatenated with its landmark sketch. W holds one learned
vector per training video, so D judges both "is this real" and "is this video i's person";
the matching loss ties the embedder's e^_i to W_i. For a new person (fine-tuning) the caller
passes `person_vector` = w0 + e^_NEW instead of a video index.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .layers import DownTrunk, sn


class Discriminator(nn.Module):
    """D: (image, sketch, video index or person vector) -> (score (B,), block features)."""

    def __init__(self, config: ModelConfig, num_videos: int):
        super().__init__()
        self.config = config
        self.num_videos = num_videos
        widths = [config.channels(i) for i in range(config.num_down)]
        self.trunk = DownTrunk(6, config.image_size, widths, config.attention_at)
        self.project = sn(nn.Linear(self.trunk.out_channels, config.embed_dim))
        # W rows start small and random so different videos are told apart from the start.
        self.W = nn.Parameter(torch.randn(max(num_videos, 0), config.embed_dim) * 0.02)
        self.w0 = nn.Parameter(torch.zeros(config.embed_dim))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, image: torch.Tensor, sketch: torch.Tensor,
                video_index: torch.Tensor | None = None,
                person_vector: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """image, sketch (B, 3, S, S) in [0, 1] -> (score (B,), features per block).

        The person term is `person_vector` (B, D) when given, else W[video_index] + w0, else
        w0 alone (realism only).
        """
        pooled, features = self.trunk(torch.cat([image * 2 - 1, sketch * 2 - 1], dim=1))
        v = self.project(pooled)
        if person_vector is not None:
            w = person_vector
        elif video_index is not None:
            w = self.W[video_index] + self.w0
        else:
            w = self.w0.expand_as(v)
        return (v * w.to(v.dtype)).sum(dim=1) + self.b.to(v.dtype), features
