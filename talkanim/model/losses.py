"""Training losses: the paper's adversarial terms, and content terms that need no download.

The paper's content loss uses VGG19 and VGGFace features whose weights cannot be fetched here,
so the default content loss is pixel L1 + (1 - MS-SSIM) + an L1 weighted on the mouth and eye
regions (where warping fails and the neural part earns its place). A VGG19 perceptual term is
available only from a local safetensors file the user provides (`PerceptualLoss(path)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
from torch import nn

from .sketch import region_mask


@dataclass(frozen=True)
class LossWeights:
    """Loss weights. adv / fm / mch are the paper's. The pixel terms are ours, set so that
    content (~0.05-0.2 unweighted) outweighs the adversarial term as VGG did there. `vgg` is
    1.0 because `PerceptualLoss` averages its L1s; the paper's 1e-2 weighted summed ones."""

    adv: float = 1.0
    fm: float = 10.0
    mch: float = 80.0
    l1: float = 20.0
    msssim: float = 5.0
    region: float = 20.0
    vgg: float = 1.0


def d_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def g_adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial term: -mean(D(fake))."""
    return -fake_scores.mean()


def feature_matching_loss(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """Sum over D's blocks of the mean L1 between real (detached) and fake features."""
    return sum((f.float() - r.detach().float()).abs().mean() for r, f in zip(real_feats, fake_feats))


def matching_loss(embedding: torch.Tensor, W_rows: torch.Tensor) -> torch.Tensor:
    """L_MCH: mean L1 between the embedder's e^_i and the discriminator's W_i (both trained)."""
    return (embedding.float() - W_rows.float()).abs().mean()


def _ms_ssim_setup(size: int) -> tuple[int, int]:
    """(window, levels) for MS-SSIM at `size` px. The standard 11 px window over 5 levels needs
    > 160 px; at 128 px a 7 px window fits 5 levels (coarsest 8 px), at 64 px a 3 px one."""
    for win in (11, 7, 5, 3):
        for levels in (5, 4, 3):
            if size > (win - 1) * 2 ** (levels - 1) and size // 2 ** (levels - 1) >= win:
                return win, levels
    return 3, 1


_MS_SSIM_WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


def ms_ssim_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM (Wang et al. 2003) over images in [0, 1], in float32 (autocast-safe).

    Uses pytorch-msssim's per-level SSIM (`_ssim`), because its `ms_ssim` asserts 5 levels'
    worth of size (> 160 px at the standard window) and takes relu(cs) ** w, whose gradient is
    NaN when a level's contrast-structure term hits 0; here each term is clamped to >= 1e-4.
    """
    win_size, levels = _ms_ssim_setup(min(fake.shape[-2:]))
    x, y = fake.float(), real.float()
    win = _fspecial_gauss_1d(win_size, 1.5).to(x.device).repeat([x.shape[1], 1, 1, 1])
    w = torch.tensor(_MS_SSIM_WEIGHTS[:levels], device=x.device)
    w = w / w.sum()
    terms = []
    for i in range(levels):
        ssim_c, cs = _ssim(x, y, data_range=1.0, win=win, size_average=False, K=(0.01, 0.03))
        if i < levels - 1:
            terms.append(cs.clamp_min(1e-4))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    terms.append(ssim_c.clamp_min(1e-4))
    value = torch.prod(torch.stack(terms) ** w.view(-1, 1, 1), dim=0)  # (B, C)
    return 1 - value.mean()


def region_l1(fake: torch.Tensor, real: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """L1 averaged over the mouth and eye regions of `points` (B, 68, 2, crop px)."""
    mask = region_mask(points, fake.shape[-1]).to(fake.dtype)
    return ((fake - real).abs() * mask).sum() / (mask.sum() * fake.shape[1]).clamp_min(1.0)


def content_terms(fake: torch.Tensor, real: torch.Tensor, points: torch.Tensor | None = None,
                  perceptual: "PerceptualLoss | None" = None) -> dict[str, torch.Tensor]:
    """Unweighted content terms: l1, msssim (1 - MS-SSIM), region (needs points), vgg."""
    terms = {"l1": (fake - real).abs().mean(), "msssim": ms_ssim_loss(fake, real)}
    if points is not None:
        terms["region"] = region_l1(fake, real, points)
    if perceptual is not None:
        terms["vgg"] = perceptual(fake, real)
    return terms


def content_loss(fake: torch.Tensor, real: torch.Tensor, points: torch.Tensor | None = None,
                 weights: LossWeights = LossWeights(),
                 perceptual: "PerceptualLoss | None" = None) -> torch.Tensor:
    """L_CNT: weighted sum of `content_terms` (fake, real (B, 3, S, S) in [0, 1])."""
    terms = content_terms(fake, real, points, perceptual)
    return sum(getattr(weights, name) * value for name, value in terms.items())


# VGG19 "features" layout (torchvision's numbering, so its state dict loads as is).
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
_VGG_TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualLoss(nn.Module):
    """L1 between VGG19 features (relu1_1 .. relu5_1) of fake and real, summed.

    Weights come ONLY from `path`: a safetensors file with torchvision's `features.N.weight` /
    `features.N.bias` keys (a `vgg19` state dict converted once by the user). Nothing is ever
    downloaded. The network is frozen.
    """

    def __init__(self, path: str, expected_sha256: str | None = None):
        super().__init__()
        from .weights import load_weights

        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers[: _VGG_TAPS[-1] + 1])
        tensors, _ = load_weights(path, expected_sha256)
        state = {k[len("features."):]: v for k, v in tensors.items() if k.startswith("features.")}
        state = {k: v for k, v in state.items() if int(k.split(".")[0]) <= _VGG_TAPS[-1]}
        self.features.load_state_dict(state)
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([fake, real]) - self.mean) / self.std
        loss = fake.new_zeros(())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG_TAPS:
                f, r = x.chunk(2)
                loss = loss + (f - r.detach()).abs().mean()
        return loss
