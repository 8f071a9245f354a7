"""Speech file -> landmark track of the template face, streamed in chunks of video frames.

    audio chunks (ffmpeg) -> 100 Hz features -> mouth coefficients (model, with context)
        -> sampled at the video frame times -> + head, eyelids, brows, gaze (idle or pose video)
        -> LandmarkTrack chunks (backend "speech")

Nothing here holds more than a chunk and a model's context: memory does not grow with the
length of the speech. `speech_track` concatenates the chunks for short inputs and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataclasses import replace

from talkanim.config import MotionConfig
from talkanim.landmarks.measures import eye_centres
from talkanim.landmarks.types import Face, LandmarkTrack
from talkanim.motion import MotionTrack, retarget
from talkanim.speech.audio import check_speech_file, iter_audio
from talkanim.speech.face import CANVAS, MOUTH_POINTS
from talkanim.speech.features import FEATURE_RATE, SpeechStats, normalize, scan_speech, stream_features
from talkanim.speech.idle import PoseFrames
from talkanim.speech.mouth import SpeechModel

CHUNK_FRAMES = 250  # video frames per track chunk (10 s at 25 fps)
BLOCK = 1000  # feature frames per model call (10 s)
VOICE_RAMP_DB = 6.0  # the mouth closes over the last 6 dB above the pause threshold


@dataclass
class Speech:
    """A speech file ready to stream: its path and first-pass statistics."""

    path: Path
    stats: SpeechStats

    def num_frames(self, fps: float) -> int:
        """Video frames the speech lasts at `fps` (at least one)."""
        return max(1, int(round(self.stats.seconds * fps)))


def open_speech(path: str | Path) -> Speech:
    """Read a speech file once (first pass: its length and statistics, fixed memory).

    InputError (one line) for a missing file, a file that is not audio or video, a file with no
    audio track or with no audio at all.
    """
    path = check_speech_file(path)
    return Speech(path, scan_speech(iter_audio(path)))


def retarget_speech(face: Face, chunk: LandmarkTrack, template: np.ndarray,
                    config: MotionConfig | None = None) -> MotionTrack:
    """A chunk of the template's track carried onto a portrait's face, as a driver is: the
    template itself is the neutral reference of every chunk (so chunks join seamlessly)."""
    config = replace(config or MotionConfig(), driver_ref=0)
    ref = np.asarray(template, np.float32)[None]
    track = LandmarkTrack(points=np.concatenate([ref, chunk.points]),
                          pupils=np.concatenate([eye_centres(ref), chunk.pupils]),
                          valid=np.ones(chunk.num_frames + 1, bool), fps=chunk.fps, size=chunk.size,
                          backend=chunk.backend)
    motion = retarget(face, track, config)
    return MotionTrack(points=motion.points[1:], pupils=motion.pupils[1:], heads=motion.heads[1:])


def with_context(fn: Callable[[np.ndarray], np.ndarray], blocks: Iterable[np.ndarray],
                 context: int) -> Iterator[np.ndarray]:
    """Apply a sequence function block by block, giving it `context` rows on either side.

    When each output row of `fn` depends only on input rows within `context` of it (and `fn`
    pads the ends as it would the whole sequence), the concatenated outputs equal
    fn(whole input): what the model computes does not depend on how the stream was cut.
    """
    history: np.ndarray | None = None
    pending: np.ndarray | None = None
    for block in blocks:
        pending = block if pending is None else np.concatenate([pending, block])
        ready = len(pending) - context
        if ready <= 0:
            continue
        window = pending if history is None else np.concatenate([history, pending])
        start = 0 if history is None else len(history)
        yield fn(window)[start : start + ready]
        done = pending[:ready] if history is None else np.concatenate([history, pending[:ready]])
        history = done[-context:] if context else done[:0]
        pending = pending[ready:]
    if pending is not None and len(pending):
        window = pending if history is None else np.concatenate([history, pending])
        start = 0 if history is None else len(history)
        yield fn(window)[start:]


class FrameSampler:
    """Resamples a 100 Hz stream (rows) at video frame times i / fps, i < num_frames."""

    def __init__(self, fps: float, num_frames: int) -> None:
        self.step = FEATURE_RATE / fps
        self.num_frames = num_frames
        self.next_frame = 0
        self.buffer: np.ndarray | None = None
        self.offset = 0  # feature index of buffer[0]

    def push(self, rows: np.ndarray) -> np.ndarray:
        """Add 100 Hz rows; return the frames now computable."""
        self.buffer = rows if self.buffer is None else np.concatenate([self.buffer, rows])
        end = self.offset + len(self.buffer)  # first feature index not yet seen
        count = 0
        while self.next_frame + count < self.num_frames and \
                int(np.floor((self.next_frame + count) * self.step)) + 1 < end:
            count += 1
        return self._emit(count)

    def finish(self) -> np.ndarray:
        """The remaining frames, holding the last row past the end."""
        return self._emit(self.num_frames - self.next_frame)

    def _emit(self, count: int) -> np.ndarray:
        buf = self.buffer
        if count <= 0 or buf is None or len(buf) == 0:
            shape = (max(count, 0),) + (() if buf is None else buf.shape[1:])
            return np.zeros(shape, np.float32) if buf is None or len(buf) == 0 else buf[:0]
        pos = (self.next_frame + np.arange(count)) * self.step - self.offset
        pos = np.clip(pos, 0, len(buf) - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, len(buf) - 1)
        w = (pos - lo).reshape((-1,) + (1,) * (buf.ndim - 1))
        out = (buf[lo] * (1 - w) + buf[hi] * w).astype(np.float32)
        self.next_frame += count
        keep_from = min(max(0, int(np.floor(self.next_frame * self.step)) - self.offset), len(buf))
        self.buffer = buf[keep_from:]
        self.offset += keep_from
        return out


def voice_activity(level: np.ndarray, stats: SpeechStats) -> np.ndarray:
    """0 in pauses (below the file's pause threshold), rising to 1 over VOICE_RAMP_DB above it."""
    return np.clip((np.asarray(level) - stats.pause_db()) / VOICE_RAMP_DB, 0.0, 1.0)


def mouth_stream(speech: Speech, model: SpeechModel, which: str, fps: float,
                 gain: float = 1.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(mouth offsets (n, P, 2), voice (n,)) per block of video frames, num_frames in all.

    In pauses the mouth returns to rest whatever the model says, so silence keeps it shut.
    """
    predict = model.predictor(which)
    rest = model.basis.rest_coefs()
    stats = speech.stats

    def rows() -> Iterator[np.ndarray]:
        for log_mel, level in stream_features(iter_audio(speech.path)):
            features = normalize(log_mel, level, stats)
            # pack the voice with the features so both travel through the context window
            yield np.concatenate([features, voice_activity(level, stats)[:, None]], axis=1)

    def run(block: np.ndarray) -> np.ndarray:
        coefs = predict(block[:, :-1])
        voice = block[:, -1:]
        return np.concatenate([rest + (coefs - rest) * voice, voice], axis=1)

    sampler = FrameSampler(fps, speech.num_frames(fps))
    for out in with_context(run, _blocks(rows(), BLOCK), predict.context):
        frames = sampler.push(out)
        if len(frames):
            yield _offsets(model, frames, rest, gain)
    frames = sampler.finish()
    if len(frames):
        yield _offsets(model, frames, rest, gain)


def _offsets(model: SpeechModel, frames: np.ndarray, rest: np.ndarray, gain: float):
    coefs, voice = frames[:, :-1], frames[:, -1]
    deltas = model.basis.deltas(coefs) - model.basis.deltas(rest[None])
    return (gain * deltas).astype(np.float32), voice


def _blocks(rows: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Regroup a stream of row blocks into blocks of `size` rows (the last one shorter)."""
    pending: list[np.ndarray] = []
    count = 0
    for block in rows:
        pending.append(block)
        count += len(block)
        while count >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            pending, count = [joined[size:]], count - size
    if count:
        yield np.concatenate(pending)


def compose(template: np.ndarray, mouth: np.ndarray, pose: PoseFrames, fps: float) -> LandmarkTrack:
    """The template moved by mouth offsets and a pose: one chunk of the speech's track."""
    normalized = template[None].astype(np.float64) + pose.offsets
    normalized[:, MOUTH_POINTS] += mouth
    head = pose.head
    points = np.einsum("nij,nkj->nki", head[:, :2, :2], normalized) + head[:, None, :2, 2]
    pupils = np.einsum("nij,nkj->nki", head[:, :2, :2], pose.pupils.astype(np.float64)) + head[:, None, :2, 2]
    n = len(points)
    return LandmarkTrack(points=points.astype(np.float32), pupils=pupils.astype(np.float32),
                         valid=np.ones(n, bool), fps=float(fps), size=(CANVAS, CANVAS), backend="speech")


def track_chunks(speech: Speech, model: SpeechModel, pose_source, fps: float, *, which: str = "auto",
                 gain: float = 1.0, chunk_frames: int = CHUNK_FRAMES) -> Iterator[LandmarkTrack]:
    """The speech's template track in chunks of at most `chunk_frames` video frames.

    `pose_source.next(voice)` gives the head, eyelids, brows and gaze of the next frames
    (`IdleMotion` or `PoseVideo`).
    """
    template = model.basis.template
    pending_mouth: list[np.ndarray] = []
    pending_voice: list[np.ndarray] = []
    count = 0

    def flush(n: int) -> LandmarkTrack:
        nonlocal pending_mouth, pending_voice, count
        mouth, voice = np.concatenate(pending_mouth), np.concatenate(pending_voice)
        pending_mouth, pending_voice, count = [mouth[n:]], [voice[n:]], count - n
        return compose(template, mouth[:n], pose_source.next(voice[:n]), fps)

    for mouth, voice in mouth_stream(speech, model, which, fps, gain):
        pending_mouth.append(mouth)
        pending_voice.append(voice)
        count += len(mouth)
        while count >= chunk_frames:
            yield flush(chunk_frames)
    if count:
        yield flush(count)


def concat_tracks(chunks: Iterable[LandmarkTrack]) -> LandmarkTrack:
    """One track from consecutive chunks (for short speech and tests)."""
    parts = list(chunks)
    first = parts[0]
    return LandmarkTrack(points=np.concatenate([p.points for p in parts]),
                         pupils=np.concatenate([p.pupils for p in parts]),
                         valid=np.concatenate([p.valid for p in parts]), fps=first.fps, size=first.size,
                         backend=first.backend)
