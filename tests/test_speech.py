"""The speech stage on its own: features, streaming, idle motion, the template track.

Real signals only (espeak-ng's voice when installed, else the synthetic voice of
speech_helpers); no corpus needed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.speech_helpers import SR, speech_wav, synthetic_speech, with_silence, write_wav
from talkanim.config import IdleConfig
from talkanim.errors import InputError
from talkanim.landmarks.measures import eye_opening, mouth_opening
from talkanim.speech.clips import at_frames, frame_times
from talkanim.speech.features import HOP, normalize, scan_speech, stream_features
from talkanim.speech.idle import IdleMotion
from talkanim.speech.mouth import SpeechMouthNet, shipped_speech_model
from talkanim.speech.stream import FrameSampler, concat_tracks, open_speech, retarget_speech, track_chunks, with_context


@pytest.fixture(scope="module")
def model():
    return shipped_speech_model()


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """1.5 s silence, speech, 1.5 s silence (WAV)."""
    folder = tmp_path_factory.mktemp("speech")
    spoken = speech_wav(folder / "spoken.wav")
    from tests.speech_helpers import read_wav

    return write_wav(folder / "talk.wav", with_silence(read_wav(spoken), 1.5, 1.5))


def test_features_do_not_depend_on_how_the_audio_is_cut():
    x = synthetic_speech(2.345)
    whole = np.concatenate([m for m, _ in stream_features([x])])
    cut = np.concatenate([m for m, _ in stream_features([x[i:i + 1234] for i in range(0, len(x), 1234)])])
    assert whole.shape == cut.shape == (-(-len(x) // HOP), 40)
    np.testing.assert_allclose(whole, cut, atol=1e-4)


def test_statistics_of_silence_and_of_speech():
    assert scan_speech([np.zeros(SR, np.float32)]).silent
    stats = scan_speech([synthetic_speech(2.0)])
    assert not stats.silent and -30 < stats.level_ref < 0 and stats.seconds == pytest.approx(2.0)


def test_model_output_does_not_depend_on_block_size(model):
    """Streaming the network block by block gives what it computes on the whole speech."""
    x = synthetic_speech(3.0)
    mel, level = (np.concatenate(a) for a in zip(*stream_features([x])))
    features = normalize(mel, level, scan_speech([x]))
    for predict in (model.predictor("learned"), model.predictor("loudness")):
        whole = predict(features)
        for block in (1, 37, 250):
            parts = [features[i:i + block] for i in range(0, len(features), block)]
            streamed = np.concatenate(list(with_context(predict, parts, predict.context)))
            np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_a_net_whose_context_is_too_short_would_differ():
    """The block test above can fail: claim less context than the net uses and it does."""
    net = SpeechMouthNet().eval()
    features = np.random.default_rng(0).standard_normal((300, 41)).astype(np.float32)

    def run(x):
        with torch.no_grad():
            return net(torch.from_numpy(x)[None])[0].numpy()

    parts = [features[i:i + 50] for i in range(0, 300, 50)]
    streamed = np.concatenate(list(with_context(run, parts, net.context // 3)))
    assert np.abs(streamed - run(features)).max() > 1e-4


@pytest.mark.parametrize("fps", [25, 29.97, 24, 60])
def test_frame_sampler_matches_offline_interpolation(fps):
    rows = np.random.default_rng(1).standard_normal((1000, 3)).astype(np.float32)
    n = int(round(10 * fps))
    for block in (7, 333):
        sampler = FrameSampler(fps, n)
        out = np.concatenate([sampler.push(rows[i:i + block]) for i in range(0, 1000, block)] + [sampler.finish()])
        np.testing.assert_allclose(out, at_frames(rows, frame_times(n, fps)), atol=1e-5)


def _idle(seed: int, seconds: float = 120.0, fps: float = 25.0, voice: float = 0.0):
    motion = IdleMotion(shipped_speech_model().basis.template, fps, seed)
    n = int(seconds * fps)
    return [motion.next(np.full(250, voice)) for _ in range(n // 250)]


def test_idle_motion_is_reproducible_and_seeds_differ():
    a, b, c = _idle(3, 20), _idle(3, 20), _idle(4, 20)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.head, y.head)
        np.testing.assert_array_equal(x.offsets, y.offsets)
    assert any(np.abs(x.head - z.head).max() > 1e-3 for x, z in zip(a, c))


def _blinks(frames, template, fps):
    """(count, durations s) of blinks: runs where the eyelid gap falls below half its usual."""
    faces = template[None] + np.concatenate([f.offsets for f in frames])
    opening = eye_opening(faces).mean(axis=1)
    shut = opening < 0.5 * np.median(opening)
    starts = np.flatnonzero(shut[1:] & ~shut[:-1]) + 1
    ends = np.flatnonzero(~shut[1:] & shut[:-1]) + 1
    ends = ends[ends > starts[0]] if len(starts) else ends
    durations = [(e - s) / fps for s, e in zip(starts, ends)]
    return len(starts), durations, starts / fps, opening


def test_idle_blinks_at_human_rates_irregularly():
    template = shipped_speech_model().basis.template
    frames = _idle(0, 300)
    count, durations, times, opening = _blinks(frames, template, 25.0)
    assert 12 * 5 <= count <= 25 * 5, count  # 12-25 a minute over 5 minutes
    assert opening.min() < 0.1 * np.median(opening)  # the lids meet
    gaps = np.diff(times)
    gaps = gaps[gaps > 0.8]  # leave out the second blink of double blinks
    assert gaps.std() / gaps.mean() > 0.25  # no metronome
    # the frames below half-open last up to the blink's 100-300 ms
    assert max(durations) <= 0.32 and np.median(durations) >= 0.04


def test_idle_head_stays_smooth_while_syllables_come_and_go():
    motion = IdleMotion(shipped_speech_model().basis.template, 25.0, 0)
    syllables = (np.arange(1500) // 3) % 2  # voice on and off every 3 frames for a minute
    head = np.concatenate([motion.next(syllables[i:i + 250]).head for i in range(0, 1500, 250)])
    roll = np.degrees(np.arctan2(head[:, 1, 0], head[:, 0, 0]))
    moved = np.linalg.norm(np.diff(head[:, :2, 2], axis=0), axis=1)
    assert np.abs(np.diff(roll)).max() < 0.5 and moved.max() < 1.0  # degrees, canvas px per frame


def test_idle_head_moves_more_while_speaking_and_never_freezes():
    quiet = np.concatenate([f.head for f in _idle(0, 60, voice=0.0)])
    loud = np.concatenate([f.head for f in _idle(0, 60, voice=1.0)])
    roll = lambda h: np.degrees(np.arctan2(h[:, 1, 0], h[:, 0, 0]))  # noqa: E731
    assert 0.3 < roll(quiet).std() < roll(loud).std() < 4.0
    assert np.abs(np.diff(roll(quiet))).max() < 0.5  # smooth: no jumps between frames


def test_template_track_retargets_onto_the_portrait(model, talk, astronaut_face):
    """Chunks of the speech's track, retargeted, keep the portrait's own face when silent and
    join without a jump; the mouth opens while the speech plays."""
    speech = open_speech(talk)
    idle = IdleMotion(model.basis.template, 25.0, 0, IdleConfig(still=0.0, brow_px=0.0))
    chunks = list(track_chunks(speech, model, idle, 25.0, chunk_frames=40))
    assert sum(c.num_frames for c in chunks) == speech.num_frames(25.0)
    assert {c.backend for c in chunks} == {"speech"}
    moved = [retarget_speech(astronaut_face, c, model.basis.template) for c in chunks]
    points = np.concatenate([m.points for m in moved])
    steps = np.abs(np.diff(points, axis=0)).max(axis=(1, 2))
    assert steps.max() < 0.05 * astronaut_face.size  # no jump at chunk borders
    opening = mouth_opening(points)
    own = mouth_opening(astronaut_face.points)
    assert np.abs(opening[:25] - own).max() < 0.02  # silence: the portrait's own mouth
    t = np.arange(len(opening)) / 25.0
    talking = (t > 1.6) & (t < t[-1] - 1.6)
    assert opening[talking].max() > own + 0.08


def test_whole_track_is_the_chunks_joined(model, talk):
    speech = open_speech(talk)

    def track(chunk):
        return concat_tracks(track_chunks(speech, model, IdleMotion(model.basis.template, 25.0, 7), 25.0,
                                          chunk_frames=chunk))

    a, b = track(250), track(33)
    np.testing.assert_allclose(a.points, b.points, atol=1e-4)


def test_open_speech_errors(tmp_path):
    with pytest.raises(InputError, match="speech not found"):
        open_speech(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(InputError, match="not an audio or video file"):
        open_speech(junk)


@pytest.mark.parametrize("which", ["loudness", "learned"])
def test_mouth_follows_the_syllables_in_sync(model, tmp_path, which):
    """Synthetic speech whose mouth-shaped loudness opens and closes 2.5 times a second: the
    template's mouth opening follows it, peaking in step (within one frame)."""
    from talkanim.evaluate.lipsync import best_lag, pearson

    speech = open_speech(write_wav(tmp_path / "syllables.wav", synthetic_speech(6.0, syllables_per_s=2.5)))
    track = concat_tracks(track_chunks(speech, model, IdleMotion(model.basis.template, 25.0), 25.0, which=which))
    t = np.arange(track.num_frames) / 25.0
    syllables = 0.5 * (1 - np.cos(2 * np.pi * 2.5 * t))
    opening = mouth_opening(track.points)
    assert abs(best_lag(opening, syllables)) <= 1
    assert pearson(opening, syllables) > 0.5


def test_lipsync_reference_is_tracked_as_the_weights_targets_were(model, tmp_path, example_driver):
    """`evaluate --lipsync` tracks the reference mouths with the backend the weights were trained
    on (a mesh and dlib place the inner lips differently), unless told otherwise."""
    from dataclasses import replace

    from talkanim.evaluate.lipsync import evaluate_lipsync

    assert model.info["backend"] == "dlib"  # the shipped weights' targets
    mesh_trained = tmp_path / "mesh.safetensors"
    replace(model, info={**model.info, "backend": "mesh"}).save(mesh_trained)
    for weights, told, expected in ((None, None, "dlib"), (mesh_trained, None, "mesh"), (mesh_trained, "dlib", "dlib")):
        report = evaluate_lipsync([example_driver], tmp_path / f"report-{expected}-{told}", weights=weights,
                                  backend=told, cache_dir=tmp_path / "tracks")
        assert report.results["config"]["backend"] == expected
        assert f"landmarks: {expected}" in report.report_md.read_text()
        assert (tmp_path / "tracks" / expected).is_dir()  # tracked with it, not just labelled
