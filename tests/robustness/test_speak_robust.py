"""`talkanim speak` under interruption and with long speech (issue 17's bad inputs)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rb_helpers import cli_cmd, ffmpeg, probe_frames, run_cli, stderr_of
from test_interrupt import _interrupt
from test_videos import _peak_rss_mb

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.speech_helpers import synthetic_speech, write_wav  # noqa: E402


@pytest.fixture(scope="module")
def speech_5s(media) -> Path:
    return write_wav(media / "speech5.wav", synthetic_speech(5.0))


def _looped(media: Path, source: Path, seconds: float, name: str) -> Path:
    out = media / name
    ffmpeg("-stream_loop", "-1", "-i", source, "-t", seconds, "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k", out)
    return out


def test_interrupted_speak_leaves_nothing(media, portrait, speech_5s, tmp_path):
    long = _looped(media, speech_5s, 60, "speech60_interrupt.mp3")
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(cli_cmd("speak", portrait, long, "-o", out), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    took, alive, err = _interrupt(proc, signal.SIGINT, ready=lambda: any(tmp_path.iterdir()))
    assert proc.returncode == 130, err
    assert "error: interrupted" in err and "Traceback" not in err
    assert took < 5 and not alive
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_long_speech_is_streamed(media, portrait, speech_5s, tmp_path):
    """60 s of speech must not take much more memory than 5 s (frames and features streamed)."""
    long = _looped(media, speech_5s, 60, "speech60.mp3")
    rss_short, p1 = _peak_rss_mb(cli_cmd("speak", portrait, speech_5s, "-o", tmp_path / "s.mp4", "-q"))
    rss_long, p2 = _peak_rss_mb(cli_cmd("speak", portrait, long, "-o", tmp_path / "l.mp4", "-q"))
    assert p1.returncode == 0 and p2.returncode == 0, (stderr_of(p1), stderr_of(p2))
    print(f"peak RSS: 5 s speech {rss_short:.0f} MB, 60 s speech {rss_long:.0f} MB")
    assert rss_long < rss_short * 1.25 + 50, (rss_short, rss_long)
    assert probe_frames(tmp_path / "l.mp4")[0] == 1500


_STAGE = """
import resource, sys, time
from talkanim.speech.idle import IdleMotion
from talkanim.speech.mouth import shipped_speech_model
from talkanim.speech.stream import open_speech, track_chunks
model = shipped_speech_model()
start = time.perf_counter()
speech = open_speech(sys.argv[1])
frames = sum(c.num_frames for c in track_chunks(speech, model, IdleMotion(model.basis.template, 25.0), 25.0))
print(frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, round(time.perf_counter() - start, 1))
"""


@pytest.mark.slow
def test_long_speech_stage_streams_in_flat_memory(media, speech_5s):
    """The speech stage (decode, features, mouth model, idle motion, template track) on a
    20-minute file peaks at about the memory of a one-minute file (one hour: README)."""
    rows = {}
    for minutes in (1, 20):
        path = _looped(media, speech_5s, 60 * minutes, f"speech{minutes}m.mp3")
        proc = run_cli_stage(path)
        frames, rss, seconds = (float(v) for v in proc.stdout.split())
        rows[minutes] = (frames, rss, seconds)
        assert frames == 60 * minutes * 25
    print(f"speech stage: 1 min {rows[1][1]:.0f} MB in {rows[1][2]} s; 20 min {rows[20][1]:.0f} MB in {rows[20][2]} s")
    assert rows[20][1] < rows[1][1] + 40, rows


def run_cli_stage(path: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", _STAGE, str(path)], capture_output=True, text=True, timeout=900,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_speak_json_result(portrait, speech_5s, tmp_path):
    out = tmp_path / "o.mp4"
    proc = run_cli("speak", portrait, speech_5s, "-o", out, "--json", "--seed", "3", "--mouth", "loudness")
    assert proc.returncode == 0, stderr_of(proc)
    result = json.loads(proc.stdout)
    assert result["mouth"] == "loudness" and result["seed"] == 3 and result["frames"] == 125
    assert result["pose"] == "idle" and result["status"] == "ok"
    assert np.isclose(result["speech_seconds"], 5.0)
