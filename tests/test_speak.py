"""`talkanim speak` as a user runs it: real subprocesses, real audio, real outputs checked.

What the user receives is measured on the output itself: its audio is decoded and
cross-correlated with the speech, its frames are tracked with the project's landmark detector
to see the mouth open while the speech is loud and stay shut in silence.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import content
from tests.content import error_line
from tests.speech_helpers import SR, read_wav, speech_wav, synthetic_speech, with_silence, write_wav
from talkanim.io import VideoWriter, ffmpeg_exe, iter_frames, probe_video

HAS_TTS = bool(shutil.which("espeak-ng") or shutil.which("espeak"))
NO_TTS_REASON = "no espeak-ng/espeak on PATH (install espeak-ng; .ci/run does when apt is available)"


def run_cli(*args, env=None) -> subprocess.CompletedProcess:
    return content.run_cli(*args, env=env, timeout=300)


def ffmpeg(*args) -> None:
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *map(str, args)],
                         capture_output=True)
    assert res.returncode == 0, res.stderr.decode()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speak")


@pytest.fixture(scope="module")
def portrait(folder, astronaut) -> Path:
    path = folder / "portrait.png"
    Image.fromarray(astronaut).resize((256, 256), Image.LANCZOS).save(path)
    return path


@pytest.fixture(scope="module")
def talk(folder) -> Path:
    """1.5 s of silence, speech, 1.5 s of silence, as MP3 (ffmpeg reads it like any audio)."""
    spoken = read_wav(speech_wav(folder / "spoken.wav"))
    wav = write_wav(folder / "talk.wav", with_silence(spoken, 1.5, 1.5))
    mp3 = folder / "talk.mp3"
    ffmpeg("-i", wav, "-c:a", "libmp3lame", "-b:a", "96k", mp3)
    return mp3


def _tracked_opening(video: Path) -> np.ndarray:
    """Mouth opening of every output frame, as the project's dlib tracker sees it."""
    from talkanim.config import TrackConfig
    from talkanim.landmarks import make_detector, mouth_opening, track_frames

    info = probe_video(video)
    track = track_frames(iter_frames(video, info=info), make_detector("dlib"), fps=info.fps,
                         size=(info.width, info.height), config=TrackConfig(smooth=False))
    return np.asarray(mouth_opening(track.points))


@pytest.fixture(scope="module")
def spoken(folder, portrait, talk):
    out = folder / "out.mp4"
    proc = run_cli("speak", portrait, talk, "-o", out, "--json", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    return out, json.loads(proc.stdout), _tracked_opening(out)


def test_output_lasts_as_long_as_the_speech(spoken, talk):
    out, result, _ = spoken
    seconds = len(read_wav(talk)) / SR
    info = probe_video(out)
    assert info.num_frames == result["frames"] == round(seconds * 25)
    assert info.fps == 25 and info.has_audio and result["audio"]
    assert (info.width, info.height) == (256, 256)


def test_output_audio_is_the_speech_in_sync(spoken, talk):
    """Cross-correlate the decoded output audio with the speech: same signal, offset under one
    frame (40 ms)."""
    out, _, _ = spoken
    speech, heard = read_wav(talk), read_wav(out)
    n = min(len(speech), len(heard))
    a, b = speech[:n] - speech[:n].mean(), heard[:n] - heard[:n].mean()
    corr = np.fft.irfft(np.fft.rfft(a, 2 * n) * np.conj(np.fft.rfft(b, 2 * n)))
    lags = np.r_[0:n, -n:0]
    best = int(lags[np.argmax(corr)])
    peak = corr.max() / np.sqrt((a * a).sum() * (b * b).sum())
    assert abs(best) < SR / 25, best
    assert peak > 0.8, peak


def test_mouth_opens_with_speech_and_stays_shut_in_silence(spoken):
    _, _, opening = spoken
    t = np.arange(len(opening)) / 25.0
    silent = (t < 1.3) | (t > t[-1] - 1.3)
    talking = (t > 1.7) & (t < t[-1] - 1.7)
    rest = np.median(opening[silent])
    assert np.percentile(opening[silent], 95) - rest < 0.03  # shut, give or take tracker noise
    # opens while speaking: measured 0.048 on the output (the targets ask 0.098; dlib reads a
    # rendered mouth about half as open as its landmarks, see #16), shut reads under 0.03
    assert np.percentile(opening[talking], 90) - rest > 0.04
    assert opening[talking].mean() > opening[silent].mean() + 0.02


def test_silence_idles_with_the_mouth_shut(folder, portrait):
    silence = write_wav(folder / "silence.wav", np.zeros(3 * SR, np.float32))
    out = folder / "silent.mp4"
    # without head motion, which makes dlib's reading of this smiling mouth wander by +-0.03
    proc = run_cli("speak", portrait, silence, "-o", out, "--no-head-motion", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    opening = _tracked_opening(out)
    assert len(opening) == 75
    # the portrait's own mouth throughout (speech opens it by more than 0.06, test above); on
    # an unchanged mouth dlib's tracked fit flips between readings 0.015 apart
    rest = np.median(opening)
    assert np.percentile(np.abs(opening - rest), 90) < 0.02
    assert opening.max() - rest < 0.03


def test_noise_and_music_do_not_crash(folder, portrait):
    t = np.arange(2 * SR) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    noise = np.random.default_rng(0).standard_normal(2 * SR) * 0.2
    sound = write_wav(folder / "music.wav", np.concatenate([0.2 * chord, noise]).astype(np.float32))
    proc = run_cli("speak", portrait, sound, "-o", folder / "music.mp4", "--json", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["frames"] == 100


def test_a_video_speaks_with_its_audio_track(folder, portrait, example_driver):
    out = folder / "from_video.mp4"
    proc = run_cli("speak", portrait, example_driver, "-o", out, "--json", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["frames"] == round(result["speech_seconds"] * 25) and probe_video(out).has_audio


def test_seed_reproduces_and_other_seeds_differ(folder, portrait):
    """Same seed, same frames; another seed, another performance (idle head motion, blinks)."""
    silence = write_wav(folder / "short_silence.wav", np.zeros(2 * SR, np.float32))
    frames = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = folder / f"seed_{name}.mp4"
        proc = run_cli("speak", portrait, silence, "-o", out, "--seed", seed, "--no-audio", "-q")
        assert proc.returncode == 0, proc.stderr.decode()
        frames[name] = np.stack(list(iter_frames(out))).astype(np.int16)
    assert np.abs(frames["a"] - frames["b"]).max() <= 2  # encoder noise at most
    assert np.abs(frames["a"] - frames["c"]).mean() > 0.5


def test_pose_video_drives_head_and_eyes(folder, portrait, talk, example_driver):
    out = folder / "posed.mp4"
    proc = run_cli("speak", portrait, talk, "--pose", example_driver, "-o", out, "--json", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["pose"].endswith("driver.mp4")
    assert result["fps"] == probe_video(example_driver).fps
    assert result["frames"] == round(len(read_wav(talk)) / SR * result["fps"])


def test_stdout_output(folder, portrait, talk):
    proc = run_cli("speak", portrait, talk, "-o", "-", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout[4:8] == b"ftyp" and len(proc.stdout) > 10_000


def test_batch_speech(folder, portrait, talk):
    paintings = folder / "paintings"
    paintings.mkdir()
    for name in ("one.png", "two.png"):
        shutil.copy(portrait, paintings / name)
    (paintings / "broken.png").write_bytes(b"not an image")
    out = folder / "batch_out"
    proc = run_cli("batch", "--speech", talk, paintings, "-o", out, "--json", "-q")
    items = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert proc.returncode == 1  # the broken one failed, the others were rendered
    assert sorted(i["status"] for i in items) == ["failed", "ok", "ok"]
    assert sorted(p.name for p in out.iterdir()) == ["one_talk.mp4", "two_talk.mp4"]


@pytest.mark.skipif(not HAS_TTS, reason=NO_TTS_REASON)
def test_text_is_spoken(folder, portrait):
    out = folder / "text.mp4"
    proc = run_cli("speak", portrait, "--text", "Hello, I am a painting.", "-o", out, "--json", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["speech"] == "text" and 1.0 < result["speech_seconds"] < 5.0
    assert probe_video(out).has_audio and result["frames"] == round(result["speech_seconds"] * 25)


def test_text_without_a_tts_engine_says_how_to_install_one(folder, portrait):
    empty = folder / "empty_path"
    empty.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": str(empty)}
    out = folder / "no_tts.mp4"
    proc = run_cli("speak", portrait, "--text", "Hello.", "-o", out, env=env)
    assert proc.returncode == 6
    line = error_line(proc)
    assert "espeak-ng" in line and "install" in line
    assert not out.exists()


@pytest.mark.parametrize("args", [("--text", ""), ("--text", "   ")])
def test_empty_text_is_a_usage_error(portrait, args):
    proc = run_cli("speak", portrait, *args)
    assert proc.returncode == 2 and "empty" in error_line(proc)


def test_speech_and_text_together_or_neither(portrait, talk):
    assert run_cli("speak", portrait).returncode == 2
    assert run_cli("speak", portrait, talk, "--text", "hi").returncode == 2


def test_bad_speech_files(folder, portrait, example_portrait):
    junk = folder / "junk.mp3"
    junk.write_bytes(np.random.default_rng(1).bytes(20_000))
    silent_video = folder / "no_audio.mp4"
    with VideoWriter(silent_video, 64, 64, 25) as writer:
        for _ in range(10):
            writer.write(np.zeros((64, 64, 3), np.uint8))
    m4a = folder / "talk.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=3", "-c:a", "aac", m4a)
    truncated = folder / "truncated.m4a"
    truncated.write_bytes(m4a.read_bytes()[: m4a.stat().st_size // 2])
    cases = [(junk, "not an audio or video file"), (silent_video, "no audio track"),
             (example_portrait, "no audio track"), (truncated, "truncated"), (folder / "missing.wav", "not found")]
    for path, message in cases:
        out = folder / "bad.mp4"
        proc = run_cli("speak", portrait, path, "-o", out)
        assert proc.returncode == 2, (path, proc.stderr.decode())
        assert message in error_line(proc), (path, error_line(proc))
        assert not out.exists() and not [p for p in folder.iterdir() if ".tmp" in p.name]
