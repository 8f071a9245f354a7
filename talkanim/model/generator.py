"""Generator G(y, psi^): paints a face crop from its landmark sketch, identity via AdaIN.

Encoder: residual down blocks with instance norm (image_size -> image_size / 8). Bottleneck:
`num_res_blocks` AdaIN residual blocks. Decoder: AdaIN residual up blocks back to image_size,
one self-attention block at `attention_at`. The AdaIN scales and biases psi^ = P e^ are the
only way the person's identity gets in; `project` computes them from an embedding.

Two modes:
- "paper": input is the sketch; output = sigmoid(head) is the whole crop.
- "hybrid": input is the sketch and the source warped to the target landmarks; the head gives
  an RGB residual and a blend-mask logit, output = warped + mask * residual. The residual conv
  is zero-initialized, so at init the output equals `warped` exactly (measured: a refiner that
  starts anywhere else blurs unseen faces). An optional `region` (B, 1, S, S) caps the mask,
  so the net only touches e.g. the mouth and eyes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import AdaIN, ResBlockAdaIN, ResBlockDown, ResBlockUp, SelfAttention, sn

# Start value of the blend-mask logit: sigmoid(-2) ~ 0.12, small but with useful gradients.
MASK_BIAS_INIT = -2.0


class Generator(nn.Module):
    """G: (sketch, adain_params[, warped]) -> image (B, 3, S, S) in [0, 1]."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.hybrid = config.mode == "hybrid"
        widths = [config.channels(i) for i in range(config.generator_down)]
        bottleneck_res = config.image_size >> config.generator_down

        cin = 6 if self.hybrid else 3
        self.down = nn.ModuleList()
        for i, cout in enumerate(widths):
            self.down.append(ResBlockDown(cin, cout, norm=True, preact=i > 0))
            cin = cout
        self.res = nn.ModuleList(ResBlockAdaIN(cin) for _ in range(config.num_res_blocks))
        # Up path: widths mirrored, ending at base_channels at full resolution.
        self.up = nn.ModuleList()
        self.attention_after = -1  # index into self.up (-1: right after the bottleneck)
        res = bottleneck_res
        for i, cout in enumerate(list(reversed(widths[:-1])) + [widths[0]]):
            self.up.append(ResBlockUp(cin, cout))
            cin, res = cout, res * 2
            if res == config.attention_at:
                self.attention_after = i
        self.attention = SelfAttention(widths[-1] if self.attention_after < 0 else
                                       self.up[self.attention_after].conv2.out_channels)
        self.out_norm = AdaIN(cin)
        if self.hybrid:
            # No spectral norm on the head: the spectral norm of a zero matrix is undefined,
            # and the zero start is what makes G the identity on the warp.
            self.head = nn.Conv2d(cin, 4, 3, padding=1)
            nn.init.zeros_(self.head.weight)
            with torch.no_grad():
                self.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, MASK_BIAS_INIT]))
        else:
            self.head = sn(nn.Conv2d(cin, 3, 3, padding=1))

        self.adain_layers: list[nn.Module] = [*self.res, *self.up, self.out_norm]
        self.num_adain_params = sum(m.num_params for m in self.adain_layers)
        # psi^ = P e^: the learned projection from the embedding to all AdaIN parameters.
        self.projection = sn(nn.Linear(config.embed_dim, self.num_adain_params, bias=False))

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """e^ (B, embed_dim) -> psi^ (B, num_adain_params)."""
        return self.projection(embedding)

    def forward(self, sketch: torch.Tensor, adain_params: torch.Tensor,
                warped: torch.Tensor | None = None, region: torch.Tensor | None = None) -> torch.Tensor:
        """sketch (B, 3, S, S) in [0, 1], adain_params (B, P), warped (B, 3, S, S) in [0, 1]
        (hybrid only), region (B, 1, S, S) in [0, 1] or None -> image (B, 3, S, S) in [0, 1]."""
        if self.hybrid:
            if warped is None:
                raise ValueError("the hybrid generator needs the warped source crop")
            x = torch.cat([sketch * 2 - 1, warped * 2 - 1], dim=1)
        else:
            x = sketch * 2 - 1
        for block in self.down:
            x = block(x)
        params = adain_params.split([m.num_params for m in self.adain_layers], dim=1)
        for block, p in zip(self.res, params):
            x = block(x, p)
        if self.attention_after < 0:
            x = self.attention(x)
        for i, (block, p) in enumerate(zip(self.up, params[len(self.res):])):
            x = block(x, p)
            if i == self.attention_after:
                x = self.attention(x)
        out = self.head(F.relu(self.out_norm(x, params[-1])))
        if not self.hybrid:
            return torch.sigmoid(out)
        residual = torch.tanh(out[:, :3])
        mask = torch.sigmoid(out[:, 3:])
        if region is not None:
            mask = mask * region.to(mask.dtype)
        return (warped + mask * residual).clamp(0, 1)
