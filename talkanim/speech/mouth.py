"""Speech features -> mouth shape: the learned network and the loudness baseline.

Both map the normalized 100 Hz features of `features.py` (T, NUM_FEATURES) to PCA coefficients
of the mouth-and-jaw offsets (T, K) of `face.MouthBasis`, and both see only a bounded window
of features around each output (`context` frames either side), so they run on a stream.

- `LoudnessMouth` (the baseline): the level envelope, mapped linearly to the coefficients
  (fitted on the training clips).
- `SpeechMouthNet`: a small dilated 1-D convolution network (non-causal: lips move before
  the sound they shape, so it looks ahead as far as it looks back).

`SpeechModel` holds the template, the basis, both predictors and which one is the default;
it loads from and saves to one safetensors file (`talkanim/weights/speech.safetensors`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from talkanim.errors import WeightsError
from talkanim.speech.face import MouthBasis
from talkanim.speech.features import NUM_FEATURES

FORMAT = "talkanim-speech"
VERSION = 1


def envelope(features: np.ndarray) -> np.ndarray:
    """Loudness envelope in [0, 1] from the relative-level channel: 0 at the pause threshold
    (40 dB below the speech level), 1 at the speech level."""
    rel = np.asarray(features)[:, -1]
    return np.clip(1.0 + rel / 2.0, 0.0, 1.0)


@dataclass
class LoudnessMouth:
    """coefs = weights[:, 0] + weights[:, 1] * envelope, the envelope smoothed over `smooth`
    feature frames and shifted `lead` frames earlier (the mouth opens before the sound)."""

    weights: np.ndarray  # (K, 2)
    smooth: int = 5
    lead: int = 0

    @property
    def context(self) -> int:
        return self.smooth // 2 + abs(self.lead) + 1

    def __call__(self, features: np.ndarray) -> np.ndarray:
        env = envelope(features)
        if self.smooth > 1 and len(env):
            kernel = np.ones(self.smooth) / self.smooth
            env = np.convolve(np.pad(env, self.smooth // 2, mode="edge"), kernel, mode="valid")[: len(features)]
        if self.lead:
            env = np.concatenate([env[self.lead:], np.repeat(env[-1:], self.lead)]) if self.lead > 0 else \
                np.concatenate([np.repeat(env[:1], -self.lead), env[: self.lead]])
        return (self.weights[:, 0][None] + env[:, None] * self.weights[:, 1][None]).astype(np.float32)


class SpeechMouthNet(nn.Module):
    """Dilated residual 1-D convolutions over 100 Hz features -> K mouth coefficients."""

    def __init__(self, features: int = NUM_FEATURES, channels: int = 64, coefs: int = 8,
                 kernel: int = 5, dilations: tuple[int, ...] = (1, 2, 4, 8), dropout: float = 0.1) -> None:
        super().__init__()
        self.config = {"features": features, "channels": channels, "coefs": coefs, "kernel": kernel,
                       "dilations": list(dilations), "dropout": dropout}
        self.inp = nn.Conv1d(features, channels, 1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2) for d in dilations
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Conv1d(channels, coefs, 1)

    @property
    def context(self) -> int:
        """Feature frames each output sees on either side."""
        k = self.config["kernel"]
        return sum(d * (k - 1) // 2 for d in self.config["dilations"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, features) -> (B, T, coefs)."""
        h = self.inp(x.transpose(1, 2))
        for block in self.blocks:
            h = h + self.drop(torch.nn.functional.gelu(block(h)))
        return self.out(h).transpose(1, 2)


@dataclass
class SpeechModel:
    """Everything `speak` needs to turn features into mouth shapes."""

    basis: MouthBasis
    loudness: LoudnessMouth
    net: SpeechMouthNet | None
    default: str = "loudness"  # "learned" only when it beat the baseline on held-out people
    info: dict = field(default_factory=dict)  # training summary (metrics, people held out)

    def predictor(self, which: str = "auto"):
        """The features -> coefficients function for `which` (auto, learned, loudness)."""
        which = self.default if which == "auto" else which
        if which == "loudness" or self.net is None:
            if which == "learned":
                raise WeightsError("these speech weights hold no learned mouth model; use --mouth loudness")
            return self.loudness
        net = self.net.eval()

        class _Run:
            context = net.context

            def __call__(self, features: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    x = torch.from_numpy(np.ascontiguousarray(features, np.float32))[None]
                    return net(x)[0].numpy()

        return _Run()

    def save(self, path: Path) -> str:
        """Write one safetensors file (atomically); returns its sha256."""
        from talkanim.model.weights import save_weights

        tensors = {
            "template": torch.from_numpy(self.basis.template),
            "basis.mean": torch.from_numpy(self.basis.mean),
            "basis.components": torch.from_numpy(self.basis.components),
            "loudness.weights": torch.from_numpy(self.loudness.weights.astype(np.float32)),
        }
        meta = {"format": FORMAT, "version": str(VERSION), "default": self.default,
                "loudness": json.dumps({"smooth": self.loudness.smooth, "lead": self.loudness.lead}),
                "info": json.dumps(self.info)}
        if self.net is not None:
            tensors.update({f"net.{k}": v for k, v in self.net.state_dict().items()})
            meta["net"] = json.dumps(self.net.config)
        return save_weights(path, tensors, meta)


def load_speech_model(path: Path, expected_sha256: str | None = None) -> SpeechModel:
    """Read speech weights written by `SpeechModel.save` (safetensors only, checked)."""
    from talkanim.model.weights import load_weights

    tensors, meta = load_weights(path, expected_sha256)
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not talkanim speech weights")
    try:
        basis = MouthBasis(tensors["template"].numpy(), tensors["basis.mean"].numpy(),
                           tensors["basis.components"].numpy())
        loud = json.loads(meta["loudness"])
        loudness = LoudnessMouth(tensors["loudness.weights"].numpy().astype(np.float64), **loud)
        net = None
        if "net" in meta:
            config = json.loads(meta["net"])
            config["dilations"] = tuple(config["dilations"])
            net = SpeechMouthNet(**config)
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        return SpeechModel(basis, loudness, net, meta.get("default", "loudness"), json.loads(meta.get("info", "{}")))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise WeightsError(f"{path}: incomplete or inconsistent speech weights ({type(error).__name__}: {error})") from None


def shipped_speech_model() -> SpeechModel:
    """The speech weights that ship in `talkanim/weights/` (sha256 checked)."""
    from talkanim.model.shipped import shipped_weights

    found = shipped_weights("speech")
    if found is None:
        raise WeightsError("no speech weights ship with this install (talkanim/weights/speech.safetensors)")
    return load_speech_model(*found)


def speech_model(weights: str | Path | None = None) -> SpeechModel:
    """The speech model from `weights` (a .safetensors file or a train-speech run folder), else
    the shipped one."""
    if weights is None:
        return shipped_speech_model()
    path = Path(weights)
    path = path / "speech.safetensors" if path.is_dir() else path
    if not path.is_file():
        raise WeightsError(f"speech weights not found: {path}")
    return load_speech_model(path)
