"""Building blocks shared by the three networks (BigGAN-style residual blocks, as the paper).

- `sn`: spectral normalization (Miyato et al. 2018) on every conv / linear layer.
- `ResBlockDown`: pre-activation residual block that halves the resolution, optionally with
  instance norm (the generator's encoder). The pooling sits between the two convolutions, so
  the second runs at half resolution: about half the FLOPs of pooling at the end. A network's
  first block (on the raw picture) instead starts with a lossless space-to-depth (2x2 pixels
  -> channels), so no convolution runs at full resolution: measured on 2 CPU cores, a 6->16
  channel 3x3 conv at 128 px cost as much backward as the whole rest of the embedder.
- `AdaIN`, `ResBlockAdaIN`, `ResBlockUp`: residual blocks whose normalization scale and bias
  come from outside (psi^ = P e^), which is how the identity enters the generator.
- `SelfAttention`: SAGAN attention with a zero-initialized gate (starts as the identity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def sn(module: nn.Module) -> nn.Module:
    """Spectral-normalize a conv or linear layer's weight."""
    return spectral_norm(module)


def conv3(cin: int, cout: int) -> nn.Module:
    return sn(nn.Conv2d(cin, cout, 3, padding=1))


def conv1(cin: int, cout: int) -> nn.Module:
    return sn(nn.Conv2d(cin, cout, 1))


class ResBlockDown(nn.Module):
    """x -> [norm] relu conv3 pool [norm] relu conv3, plus pool conv1 skip; halves H and W.

    `preact=False` for the first block of a network, whose input is the raw picture (a ReLU
    there would throw half of it away).
    """

    def __init__(self, cin: int, cout: int, norm: bool = False, preact: bool = True):
        super().__init__()
        self.preact = preact
        self.norm1 = nn.InstanceNorm2d(cin, affine=True) if norm and preact else nn.Identity()
        self.norm2 = nn.InstanceNorm2d(cout, affine=True) if norm else nn.Identity()
        self.conv1 = conv3(cin if preact else 4 * cin, cout)
        self.conv2 = conv3(cout, cout)
        self.skip = conv1(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            h = F.avg_pool2d(self.conv1(F.relu(self.norm1(x))), 2)
        else:
            h = self.conv1(F.pixel_unshuffle(x, 2))
        h = self.conv2(F.relu(self.norm2(h)))
        return h + self.skip(F.avg_pool2d(x, 2))


class ResBlock(nn.Module):
    """Plain pre-activation residual block at constant resolution and width."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.conv2 = conv3(channels, channels), conv3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class AdaIN(nn.Module):
    """Instance norm whose per-channel scale and bias come from outside.

    params (B, 2C) = [gamma, beta]; the output is norm(x) * (1 + gamma) + beta, so zero params
    give plain instance norm (a sane start before the projection P has learned anything).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.num_params = 2 * channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        gamma, beta = params.to(x.dtype).unflatten(1, (2, self.channels)).unbind(1)
        h = F.instance_norm(x)
        return h * (1 + gamma[..., None, None]) + beta[..., None, None]


class ResBlockAdaIN(nn.Module):
    """Residual block with AdaIN, at constant resolution (the generator's bottleneck)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.norm2 = AdaIN(channels), AdaIN(channels)
        self.conv1, self.conv2 = conv3(channels, channels), conv3(channels, channels)
        self.num_params = self.norm1.num_params + self.norm2.num_params

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        p1, p2 = params.split([self.norm1.num_params, self.norm2.num_params], dim=1)
        h = self.conv1(F.relu(self.norm1(x, p1)))
        h = self.conv2(F.relu(self.norm2(h, p2)))
        return x + h


class ResBlockUp(nn.Module):
    """AdaIN relu conv3 upsample AdaIN relu conv3, plus upsample conv1 skip; doubles H and W.

    The first convolution runs before the upsampling (at low resolution), for speed.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.norm2 = AdaIN(cin), AdaIN(cout)
        self.conv1, self.conv2 = conv3(cin, cout), conv3(cout, cout)
        self.skip = conv1(cin, cout)
        self.num_params = self.norm1.num_params + self.norm2.num_params

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        p1, p2 = params.split([self.norm1.num_params, self.norm2.num_params], dim=1)
        h = self.conv1(F.relu(self.norm1(x, p1)))
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.norm2(h, p2)))
        return h + F.interpolate(self.skip(x), scale_factor=2.0, mode="nearest")


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019); `gamma` starts at 0 so the block starts as x."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query, self.key = conv1(channels, inner), conv1(channels, inner)
        self.value = conv1(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, c')
        k = self.key(x).flatten(2).transpose(1, 2)
        v = self.value(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        # SAGAN uses unscaled dot products; scaling only changes the softmax temperature's
        # start, and the fused kernel (flash / memory-efficient on CUDA) needs this form.
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return x + self.gamma.to(x.dtype) * out.transpose(1, 2).reshape(b, c, h, w)


def sum_pool(x: torch.Tensor) -> torch.Tensor:
    """Global sum pooling (the paper's choice for E and D): (B, C, H, W) -> (B, C)."""
    return x.sum(dim=(2, 3))


class DownTrunk(nn.Module):
    """The body the embedder and discriminator share: residual down blocks from `image_size`
    to 4 px, one self-attention block at `attention_at`, a final residual block, ReLU and
    global sum pooling. Returns the pooled vector and every block's output (for the
    discriminator's feature matching).
    """

    def __init__(self, in_channels: int, image_size: int, channels: list[int], attention_at: int):
        super().__init__()
        blocks: list[nn.Module] = []
        cin, res = in_channels, image_size
        for i, cout in enumerate(channels):
            blocks.append(ResBlockDown(cin, cout, preact=i > 0))
            cin, res = cout, res // 2
            if res == attention_at:
                blocks.append(SelfAttention(cout))
        blocks.append(ResBlock(cin))
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return sum_pool(F.relu(x)), features
