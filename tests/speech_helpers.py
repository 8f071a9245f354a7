"""Speech the tests make themselves: espeak-ng when the machine has it, else a synthetic voice.

The synthetic voice is a 120 Hz glottal pulse train through two formant resonators, switched
between an open vowel (/a/: 750 and 1200 Hz) and a closed hum (/m/: 250 Hz, quiet) at a
syllable rate: loud where a mouth opens, quiet where it closes, like speech.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

SR = 16000


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = SR) -> Path:
    """16-bit mono WAV."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def _resonate(x: np.ndarray, freq: float, bw: float) -> np.ndarray:
    r = np.exp(-np.pi * bw / SR)
    a1, a2 = -2 * r * np.cos(2 * np.pi * freq / SR), r * r
    y = np.zeros_like(x)
    for i in range(len(x)):
        y[i] = x[i] - a1 * (y[i - 1] if i else 0) - a2 * (y[i - 2] if i > 1 else 0)
    return y


def synthetic_speech(seconds: float, syllables_per_s: float = 4.0, seed: int = 0) -> np.ndarray:
    """A speech-like signal (module docstring), peak about -6 dBFS."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    pulses = np.zeros(n)
    pulses[(np.arange(0, n, SR // 120))] = 1.0
    pulses += 0.02 * rng.standard_normal(n)
    vowel = _resonate(pulses, 750, 90) + 0.6 * _resonate(pulses, 1200, 110)
    hum = _resonate(pulses, 250, 60)
    vowel /= np.abs(vowel).max()
    hum /= np.abs(hum).max()
    open_ = 0.5 * (1 - np.cos(2 * np.pi * syllables_per_s * t))  # 0 closed .. 1 open
    out = open_ * vowel + (1 - open_) * 0.08 * hum
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def speech_wav(path: Path, text: str = "Good evening. Welcome to the museum. Look at this painting.",
               seconds: float = 3.0) -> Path:
    """Spoken `text` from espeak-ng when installed, else `seconds` of synthetic speech."""
    engine = shutil.which("espeak-ng") or shutil.which("espeak")
    if engine:
        subprocess.run([engine, "-v", "en", "-w", str(path), text], check=True, capture_output=True)
        return path
    return write_wav(path, synthetic_speech(seconds))


def with_silence(speech: np.ndarray, before_s: float, after_s: float) -> np.ndarray:
    return np.concatenate([np.zeros(int(before_s * SR), np.float32), speech, np.zeros(int(after_s * SR), np.float32)])


def read_wav(path: Path) -> np.ndarray:
    """Any audio file decoded to 16 kHz mono float32 (through the project's decoder)."""
    from talkanim.speech.audio import read_audio

    return read_audio(path)
