"""Speech features at 100 Hz: log-mel spectrum and level, computed with numpy, streamed.

Feature frame k is centred on sample k * HOP (time k / 100 s): it sees the 25 ms window
[k * HOP - WINDOW / 2, k * HOP + WINDOW / 2), zero before the first sample and after the last.
A file of S samples gives ceil(S / HOP) frames, the same whether it is processed whole or in
chunks (`FeatureStream`).

Normalization needs the whole file's statistics (the speaker's level and spectral colour), so
speech is read twice: `scan_speech` accumulates them in histograms of fixed size (memory does
not grow with length), then the second pass normalizes each frame as it streams past.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from talkanim.speech.audio import SAMPLE_RATE

HOP = 160  # 10 ms
WINDOW = 400  # 25 ms
N_FFT = 512
N_MELS = 40
FEATURE_RATE = SAMPLE_RATE / HOP  # 100 frames per second
NUM_FEATURES = N_MELS + 1  # normalized log-mel bands + relative level
FLOOR_DB = -100.0  # level of digital silence (and the floor of every band)
# Frames quieter than this are never speech, whatever the file's own level.
ABSOLUTE_SILENCE_DB = -65.0
# Frames more than this far below the file's speech level count as pauses.
PAUSE_BELOW_DB = 40.0
_HIST_BINS = np.arange(FLOOR_DB, 20.0 + 1e-9, 0.5)  # level histogram, 0.5 dB bins


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   fmin: float = 60.0, fmax: float = 7600.0) -> np.ndarray:
    """Triangular filters on the HTK mel scale: (n_mels, n_fft // 2 + 1), each summing to ~1."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None] - lo) / (mid - lo)
    fall = (hi - freqs[None]) / (hi - mid)
    bank = np.maximum(0.0, np.minimum(rise, fall))
    return (bank / np.maximum(bank.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


_BANK = mel_filterbank()
_HANN = np.hanning(WINDOW).astype(np.float32)


def frame_features(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel (T, N_MELS) and level (T,), both in dB, of windows (T, WINDOW) of samples.

    Level is the window's RMS in dBFS (a full-scale sine reads -3 dB); both are floored at
    FLOOR_DB so digital silence is finite.
    """
    windows = np.asarray(windows, np.float32)
    rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))
    level = 20.0 * np.log10(np.maximum(rms, 10 ** (FLOOR_DB / 20)))
    spec = np.fft.rfft(windows * _HANN, n=N_FFT, axis=1)
    power = (spec.real**2 + spec.imag**2) / (WINDOW * np.mean(_HANN**2))
    mel = power.astype(np.float32) @ _BANK.T
    log_mel = 10.0 * np.log10(np.maximum(mel, 10 ** (FLOOR_DB / 10)))
    return log_mel.astype(np.float32), level.astype(np.float32)


class FeatureStream:
    """Cuts a stream of sample chunks into centred windows, HOP apart (module docstring)."""

    def __init__(self) -> None:
        self._buf = np.zeros(WINDOW // 2, np.float32)  # zeros before the first sample
        self._samples = 0
        self._frames = 0

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add samples; return the features of every window now complete."""
        samples = np.asarray(samples, np.float32).ravel()
        self._samples += len(samples)
        self._buf = np.concatenate([self._buf, samples])
        n = (len(self._buf) - WINDOW) // HOP + 1 if len(self._buf) >= WINDOW else 0
        return self._take(n)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The remaining windows, zero-padded past the end: ceil(samples / HOP) frames in all."""
        total = -(-self._samples // HOP)
        n = max(0, total - self._frames)
        need = (n - 1) * HOP + WINDOW if n else 0
        if len(self._buf) < need:
            self._buf = np.concatenate([self._buf, np.zeros(need - len(self._buf), np.float32)])
        return self._take(n)

    def _take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n <= 0:
            return np.zeros((0, N_MELS), np.float32), np.zeros(0, np.float32)
        idx = np.arange(n)[:, None] * HOP + np.arange(WINDOW)[None]
        out = frame_features(self._buf[idx])
        self._buf = self._buf[n * HOP:]
        self._frames += n
        return out


def stream_features(chunks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(log_mel, level) blocks for a stream of sample chunks; ceil(samples / HOP) frames in all."""
    stream = FeatureStream()
    for chunk in chunks:
        mel, level = stream.push(chunk)
        if len(level):
            yield mel, level
    mel, level = stream.finish()
    if len(level):
        yield mel, level


@dataclass(frozen=True)
class SpeechStats:
    """What the first pass learned about a file: its length and its speaker's level and colour."""

    num_samples: int
    level_ref: float  # dBFS: the 95th percentile of speech-frame levels
    mel_mean: np.ndarray  # (N_MELS,) over speech frames
    mel_std: np.ndarray  # (N_MELS,)
    speech_fraction: float  # share of frames above the pause threshold

    @property
    def seconds(self) -> float:
        return self.num_samples / SAMPLE_RATE

    @property
    def silent(self) -> bool:
        """No frame of the file is louder than digital silence's neighbourhood."""
        return self.speech_fraction == 0.0

    def pause_db(self) -> float:
        """Frames below this level are pauses (absolute floor, or far below the speech level)."""
        return max(ABSOLUTE_SILENCE_DB, self.level_ref - PAUSE_BELOW_DB)


class StatsAccumulator:
    """Histograms of frame level, and per-level sums of log-mel, in fixed memory."""

    def __init__(self) -> None:
        bins = len(_HIST_BINS)
        self.count = np.zeros(bins, np.int64)
        self.mel_sum = np.zeros((bins, N_MELS), np.float64)
        self.mel_sq = np.zeros((bins, N_MELS), np.float64)
        self.num_samples = 0

    def add(self, log_mel: np.ndarray, level: np.ndarray) -> None:
        b = np.clip(np.searchsorted(_HIST_BINS, level, side="right") - 1, 0, len(_HIST_BINS) - 1)
        np.add.at(self.count, b, 1)
        np.add.at(self.mel_sum, b, log_mel)
        np.add.at(self.mel_sq, b, np.asarray(log_mel, np.float64) ** 2)

    def result(self) -> SpeechStats:
        total = int(self.count.sum())
        audible = _HIST_BINS >= ABSOLUTE_SILENCE_DB
        if total == 0 or self.count[audible].sum() == 0:
            return SpeechStats(self.num_samples, FLOOR_DB, np.full(N_MELS, FLOOR_DB, np.float32),
                               np.ones(N_MELS, np.float32), 0.0)
        cum = np.cumsum(self.count[audible])
        level_ref = float(_HIST_BINS[audible][np.searchsorted(cum, 0.95 * cum[-1])] + 0.25)
        gate = max(ABSOLUTE_SILENCE_DB, level_ref - PAUSE_BELOW_DB)
        keep = _HIST_BINS >= gate - 0.25
        n = max(int(self.count[keep].sum()), 1)
        mean = self.mel_sum[keep].sum(axis=0) / n
        var = self.mel_sq[keep].sum(axis=0) / n - mean**2
        std = np.sqrt(np.maximum(var, 1.0))  # at least 1 dB: a pure tone must not blow up
        return SpeechStats(self.num_samples, level_ref, mean.astype(np.float32), std.astype(np.float32),
                           float(self.count[keep].sum()) / total)


def scan_speech(chunks: Iterable[np.ndarray]) -> SpeechStats:
    """First pass over a file's samples: its length and statistics (fixed memory)."""
    acc = StatsAccumulator()
    stream = FeatureStream()

    def blocks():
        for chunk in chunks:
            acc.num_samples += len(chunk)
            yield stream.push(chunk)
        yield stream.finish()

    for mel, level in blocks():
        if len(level):
            acc.add(mel, level)
    return acc.result()


def normalize(log_mel: np.ndarray, level: np.ndarray, stats: SpeechStats) -> np.ndarray:
    """Model input (T, NUM_FEATURES): log-mel standardized by the file's speech statistics, and
    the level relative to its speech level (in units of 20 dB, clipped to [-3, 1])."""
    mel = (log_mel - stats.mel_mean) / stats.mel_std
    rel = np.clip((level - stats.level_ref) / 20.0, -3.0, 1.0)
    # Pauses carry no spectral colour worth learning: flatten them so noise floors of
    # different recordings look alike.
    pause = (level < stats.pause_db())[:, None]
    mel = np.where(pause, 0.0, np.clip(mel, -5.0, 5.0))
    return np.concatenate([mel, rel[:, None]], axis=1).astype(np.float32)
