"""The Python API: what the CLI calls and what scripts import.

    from talkanim.api import animate
    result = animate("mona_lisa.jpg", "driver.mp4", "mona.mp4")

Data flows one way through the stages: driver video -> landmarks -> motion -> rendered frames ->
encoded video. Every function here only wires stages together; the work lives in the stage
packages (io, landmarks, motion, render, model, train).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkanim.config import AnimateConfig
from talkanim.devices import resolve_device
from talkanim.errors import InputError, OutputError, TalkanimError
from talkanim.io import VideoInfo, VideoWriter, iter_frames, load_image, probe_video, watch_cuts
from talkanim.landmarks import (
    LandmarkDetector,
    detect_face,
    load_track,
    make_detector,
    track_frames,
)
from talkanim.landmarks.matte import PersonMatter, person_matte
from talkanim.landmarks.types import Face, LandmarkTrack
from talkanim.motion import MotionTrack, retarget, shot_weights
from talkanim import neural
from talkanim.render import FaceRenderer, make_preview

if TYPE_CHECKING:
    from talkanim.speech.stream import Speech

# progress(stage, done, total): stage is "track", "finetune", "render" or "batch"; total may be None.
Progress = Callable[[str, int, "int | None"], None]
Log = Callable[[str], None]

TRACK_SUFFIXES = {".npz"}
RENDER_BATCH = 8  # frames rendered per torch call: amortizes Python overhead, bounded memory


@dataclass
class Driver:
    """A driver ready to animate any number of portraits: its landmark track and, for a video,
    where its frames and audio come from."""

    path: Path
    track: LandmarkTrack
    video: VideoInfo | None  # None when the driver is a saved landmark track

    @property
    def has_audio(self) -> bool:
        return bool(self.video and self.video.has_audio)


@dataclass
class AnimateResult:
    """What one `animate` produced; `to_json()` is what `--json` prints."""

    source: str
    driver: str
    output: str
    frames: int
    fps: float
    width: int
    height: int
    audio: bool
    driver_frames_without_face: int
    landmarks: str
    model: str
    seconds: float
    status: str = "ok"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class BatchItem:
    """One portrait of a batch: its result, or why it failed, or that it was skipped."""

    source: str
    output: str
    status: str  # "ok", "failed", "skipped"
    error: str | None = None
    result: AnimateResult | None = None

    def to_json(self) -> dict:
        data = {"source": self.source, "output": self.output, "status": self.status}
        if self.error:
            data["error"] = self.error
        if self.result:
            data.update({k: v for k, v in self.result.to_json().items() if k not in data})
        return data


@dataclass
class Session:
    """Things that are costly to build and shared by every animation of a run."""

    config: AnimateConfig = field(default_factory=AnimateConfig)
    log: Log | None = None
    _detector: LandmarkDetector | None = None
    _matter: PersonMatter | None = None

    @property
    def detector(self) -> LandmarkDetector:
        if self._detector is None:
            self._detector = make_detector(
                self.config.track.backend, device=self.config.device, log=self.log
            )
        return self._detector

    @property
    def matter(self) -> PersonMatter:
        """The person segmentation, loaded once for every portrait of the run."""
        if self._matter is None:
            self._matter = PersonMatter()
        return self._matter


def default_output(source: str | Path, driver: str | Path) -> Path:
    """`SOURCE-stem_DRIVER-stem.mp4` in the current working directory."""
    return Path.cwd() / f"{Path(source).stem}_{Path(driver).stem}.mp4"


def load_driver(
    driver: str | Path,
    config: AnimateConfig | None = None,
    *,
    session: Session | None = None,
    progress: Progress | None = None,
) -> Driver:
    """Track the landmarks of a driving video once (or load a saved `.npz` track)."""
    session = session or Session(config or AnimateConfig())
    path = _existing_file(driver, "driver")
    if path.suffix.lower() in TRACK_SUFFIXES:
        return Driver(path, load_track(path), None)
    info = probe_video(path)
    frames = iter_frames(path, info=info)
    on_frame = (lambda i: progress("track", i + 1, info.num_frames)) if progress else None
    cuts: list[int] = []
    try:
        track = track_frames(
            watch_cuts(frames, cuts),
            session.detector,
            fps=info.fps,
            size=(info.width, info.height),
            config=session.config.track,
            on_frame=on_frame,
            cuts=cuts,
        )
    finally:
        frames.close()
    if cuts and session.log:
        shown = ", ".join(map(str, cuts[:5])) + (", ..." if len(cuts) > 5 else "")
        plural = "s" if len(cuts) > 1 else ""
        session.log(f"{path.name}: {len(cuts)} camera cut{plural}, at frame{plural} {shown}; each "
                    "shot's motion is measured from its own start")
    return Driver(path, track, info)


def animate(
    source: str | Path,
    driver: str | Path | Driver,
    output: str | Path | None = None,
    *,
    config: AnimateConfig | None = None,
    session: Session | None = None,
    progress: Progress | None = None,
) -> AnimateResult:
    """Animate the portrait `source` with the expressions and head motion of `driver`.

    `driver` is a video, a saved landmark track (`.npz`), or a `Driver` from `load_driver`
    (reuse it to animate many portraits with one driver). `output` is an MP4 path, or "-" for
    a fragmented MP4 on stdout; by default `SOURCE-stem_DRIVER-stem.mp4` in the working
    directory. The output has the portrait's full size (rounded to even), the driver's frame
    rate (or `config.fps`), and the driver's audio unless `config.audio` is False.
    """
    started = time.perf_counter()
    session = session or Session(config or AnimateConfig())
    config = session.config
    source_path = _existing_file(source, "source")
    driver_path = driver.path if isinstance(driver, Driver) else _existing_file(driver, "driver")
    out = _output_path(output, source_path, driver_path)

    image = load_image(source_path)
    face = detect_face(image, session.detector, face_index=config.face_index, log=session.log)
    if not isinstance(driver, Driver):
        driver = load_driver(driver_path, session=session, progress=progress)
    motion = retarget(face, driver.track, config.motion)
    device = str(resolve_device(config.device))
    shots = [_load_shot(path, session) for path in config.shots]
    network = _neural_face([(image, face), *shots], session, device, progress)
    refine = network.refine if network else None

    fps = config.fps or driver.track.fps
    frame_indices = _resample_indices(driver.track.num_frames, driver.track.fps, fps)
    matte = person_matte(image, face, matter=session.matter)
    # a network refines what the renderer makes, painted mouth included (what it trains on)
    renderer = FaceRenderer(image, face, config.render, shots=shots, matte=matte, device=device)
    # Column 0 is the portrait; with no extra shots every frame comes from it.
    weights = (shot_weights(np.stack([face.points] + [f.points for _, f in shots]), motion.points,
                            blend=config.motion.shot_blend) if shots else None)
    audio_from = driver.path if (config.audio and driver.has_audio) else None

    height, width = image.shape[:2]
    preview = config.render.preview
    if preview:  # the panels' widths follow the portrait's and the driver's own proportions
        driver_width, driver_height = driver.track.size
        height, width = make_preview(image, np.zeros((driver_height, driver_width, 3), np.uint8), image).shape[:2]
    with VideoWriter(out, width, height, fps, audio_from=audio_from, num_frames=len(frame_indices)) as writer:
        driver_frames = _driver_frames(driver, frame_indices) if preview else None
        for start in range(0, len(frame_indices), RENDER_BATCH):
            chunk = frame_indices[start : start + RENDER_BATCH]
            # one reused full frame: only the moving window is written (no portrait copy per frame)
            frames = renderer.render_frames(motion.points[chunk], motion.pupils[chunk], heads=motion.heads[chunk],
                                            refine=refine, shot_weights=None if weights is None else weights[chunk])
            for frame in frames:
                if driver_frames is not None:
                    frame = make_preview(image, next(driver_frames), frame)
                writer.write(frame)
            if progress:
                progress("render", start + len(chunk), len(frame_indices))
        if driver_frames is not None:
            driver_frames.close()

    return AnimateResult(
        source=str(source_path),
        driver=str(driver_path),
        output=str(out),
        frames=len(frame_indices),
        fps=float(fps),
        width=width + width % 2,
        height=height + height % 2,
        audio=audio_from is not None,
        driver_frames_without_face=driver.track.num_missing,
        landmarks=driver.track.backend,
        model=network.mode if network else "none",
        seconds=round(time.perf_counter() - started, 3),
    )


@dataclass
class SpeakResult:
    """What one `speak` produced; `to_json()` is what `--json` prints."""

    source: str
    speech: str
    output: str
    frames: int
    fps: float
    width: int
    height: int
    audio: bool
    speech_seconds: float
    mouth: str  # the speech -> mouth model: "learned" or "loudness"
    pose: str  # "idle" or the pose video
    seed: int
    model: str
    seconds: float
    status: str = "ok"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PreparedSpeech:
    """Speech ready to make any number of portraits talk: read once (length, statistics), its
    pose video tracked once. `path` is the audio the output carries (a TTS file for --text)."""

    path: Path
    name: str  # what outputs are named after: the speech file's stem, or "text"
    speech: Speech
    pose: Driver | None = None


def prepare_speech(
    speech: str | Path | None = None,
    *,
    text: str | None = None,
    workdir: str | Path | None = None,
    config: AnimateConfig | None = None,
    session: Session | None = None,
    progress: Progress | None = None,
) -> PreparedSpeech:
    """Read SPEECH (any audio, or a video's audio track) or synthesize `text` into `workdir`
    with the TTS engine on the machine, and track `config.speech.pose` if set."""
    from talkanim.speech.stream import open_speech
    from talkanim.speech.tts import check_text, synthesize

    session = session or Session(config or AnimateConfig())
    if (speech is None) == (text is None):
        raise InputError("give SPEECH (an audio or video file) or --text, one of them")
    if text is not None:
        check_text(text)
        if workdir is None:
            raise InputError("--text needs a working folder for the synthesized speech")
        path, name = synthesize(text, Path(workdir) / "speech.wav", voice=session.config.speech.voice), "text"
    else:
        path, name = _existing_file(speech, "speech"), Path(speech).stem
    if progress:
        progress("speech", 0, None)
    opened = open_speech(path)
    if progress:
        progress("speech", 1, 1)
    pose_path = session.config.speech.pose
    pose = load_driver(pose_path, session=session, progress=progress) if pose_path else None
    return PreparedSpeech(path, name, opened, pose)


def speak(
    source: str | Path,
    speech: str | Path | PreparedSpeech | None = None,
    output: str | Path | None = None,
    *,
    text: str | None = None,
    config: AnimateConfig | None = None,
    session: Session | None = None,
    progress: Progress | None = None,
) -> SpeakResult:
    """Make the portrait `source` talk: lips in sync with `speech`, or with `text` spoken by the
    TTS engine on this machine.

    `speech` is any audio ffmpeg reads or a video whose audio track is used (or a
    `PreparedSpeech`, to speak many portraits). Head motion, blinks and gaze come from
    `config.speech.pose` (a video), else natural idle motion seeded by `config.speech.seed`.
    The output carries the speech's audio and is rendered as `animate` renders a driver. Audio
    and motion are streamed: memory does not grow with the speech's length.
    """
    import tempfile

    started = time.perf_counter()
    session = session or Session(config or AnimateConfig())
    config = session.config
    source_path = _existing_file(source, "source")
    if isinstance(speech, PreparedSpeech):
        named = Path(f"{speech.name}.mp4") if speech.name == "text" else speech.path
    else:
        named = Path("text.mp4") if speech is None else _existing_file(speech, "speech")
    out = _output_path(output, source_path, named)  # before any work: a bad output fails fast
    with tempfile.TemporaryDirectory(prefix="talkanim-speech-") as workdir:
        if not isinstance(speech, PreparedSpeech):
            speech = prepare_speech(speech, text=text, workdir=workdir, session=session, progress=progress)
        return _speak(source_path, speech, out, session, progress, started)


def _speak(source_path: Path, speech: PreparedSpeech, out, session: Session, progress, started: float) -> SpeakResult:
    from talkanim.speech.idle import IdleMotion
    from talkanim.speech.pose import PoseVideo
    from talkanim.speech.stream import retarget_speech, track_chunks

    from talkanim.speech.mouth import speech_model

    config = session.config
    model = speech_model(config.speech.weights)
    mouth = model.default if config.speech.mouth == "auto" else config.speech.mouth
    template = model.basis.template
    image = load_image(source_path)
    face = detect_face(image, session.detector, face_index=config.face_index, log=session.log)
    fps = config.fps or (speech.pose.track.fps if speech.pose else config.speech.default_fps)
    seed = config.speech.seed
    pose = (PoseVideo(speech.pose.track, template, fps=fps, seed=seed, idle_config=config.speech.idle)
            if speech.pose else IdleMotion(template, fps, seed, config.speech.idle))
    device = str(resolve_device(config.device))
    shots = [_load_shot(path, session) for path in config.shots]
    network = _neural_face([(image, face), *shots], session, device, progress)
    refine = network.refine if network else None
    matte = person_matte(image, face, matter=session.matter)
    # a network refines what the renderer makes, painted mouth included (what it trains on)
    renderer = FaceRenderer(image, face, config.render, shots=shots, matte=matte, device=device)
    num_frames = speech.speech.num_frames(fps)
    audio_from = speech.path if config.audio else None

    height, width = image.shape[:2]
    preview = config.render.preview
    if preview:
        height, width = make_preview(image, image, image).shape[:2]
    done = 0
    with VideoWriter(out, width, height, fps, audio_from=audio_from, num_frames=num_frames) as writer:
        for chunk in track_chunks(speech.speech, model, pose, fps, which=mouth, gain=config.speech.mouth_gain):
            motion = retarget_speech(face, chunk, template, config.motion)
            weights = (shot_weights(np.stack([face.points] + [f.points for _, f in shots]), motion.points,
                                    blend=config.motion.shot_blend) if shots else None)
            for start in range(0, motion.num_frames, RENDER_BATCH):
                part = slice(start, start + RENDER_BATCH)
                frames = renderer.render_frames(motion.points[part], motion.pupils[part], heads=motion.heads[part],
                                                refine=refine, shot_weights=None if weights is None else weights[part])
                for k, frame in enumerate(frames):
                    if preview:
                        drawn = _draw_points(np.zeros((*chunk.size[::-1], 3), np.uint8), chunk.points[start + k])
                        frame = make_preview(image, drawn, frame)
                    writer.write(frame)
                    done += 1
                if progress:
                    progress("render", done, num_frames)

    return SpeakResult(
        source=str(source_path), speech=str(speech.path) if speech.name != "text" else "text",
        output=str(out), frames=done, fps=float(fps), width=width + width % 2, height=height + height % 2,
        audio=audio_from is not None, speech_seconds=round(speech.speech.stats.seconds, 3), mouth=mouth,
        pose=str(speech.pose.path) if speech.pose else "idle", seed=seed,
        model=network.mode if network else "none", seconds=round(time.perf_counter() - started, 3),
    )


def _load_shot(path: Path, session: Session) -> tuple[np.ndarray, Face]:
    """Another picture of the portrait's person, with its face (the largest)."""
    image = load_image(_existing_file(path, "shot"))
    return image, detect_face(image, session.detector, name=str(path), log=session.log)


def _neural_face(pictures: list[tuple[np.ndarray, Face]], session: Session, device: str,
                 progress) -> neural.NeuralFace | None:
    """The model fine-tuned on the person's pictures (the portrait first), or None for warp only."""
    config = session.config
    mode = neural.wanted_mode(config.neural)
    if mode is None:
        if session.log and config.neural.model == "auto":
            session.log("model: none (warp only; the shipped weights do not beat it yet: --model hybrid to try them)")
        return None
    return neural.prepare(mode, pictures, config, device=device, log=session.log, progress=progress)


def animate_batch(
    driver: str | Path,
    sources: Iterable[str | Path],
    out_dir: str | Path,
    *,
    config: AnimateConfig | None = None,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    workers: int = 1,
    log: Log | None = None,
    progress: Progress | None = None,
    on_item: Callable[[BatchItem], None] | None = None,
) -> list[BatchItem]:
    """Animate many portraits with one driver, whose landmarks are tracked once.

    A portrait that cannot be animated (unreadable, no face, ...) is reported as "failed" and
    the rest go on. Outputs that already exist are "skipped" unless `overwrite`, so rerunning
    an interrupted batch finishes only what is left. `shard=(k, n)` takes every n-th source
    starting at k (0 <= k < n) of the sorted list, so n machines can share a collection.
    """
    config = config or AnimateConfig()
    index, count = shard
    if not 0 <= index < count:
        raise InputError(f"--shard {index}/{count}: K must be in 0..N-1")
    out_dir = Path(out_dir)
    ensure_writable_dir(out_dir)
    ordered = sorted(dict.fromkeys(str(s) for s in sources))[index::count]
    named = Path(f"{driver.name}.mp4") if isinstance(driver, PreparedSpeech) else getattr(driver, "path", driver)
    plan = list(zip(ordered, _batch_outputs(ordered, named, out_dir)))

    items: list[BatchItem] = []
    todo = []
    for src, out in plan:
        if out.exists() and not overwrite:
            items.append(BatchItem(src, str(out), "skipped"))
            if on_item:
                on_item(items[-1])
        else:
            todo.append((src, out))
    if not todo:
        return items

    session = Session(config, log=log)
    driver_data = driver if isinstance(driver, (Driver, PreparedSpeech)) else \
        load_driver(driver, session=session, progress=progress)
    quiet_session = Session(config, log=None, _detector=session.detector, _matter=session.matter)
    if workers > 1:
        results = _run_parallel(todo, driver_data, config, workers)
    else:
        results = (_animate_item(src, driver_data, out, quiet_session) for src, out in todo)
    for done, item in enumerate(results, 1):
        items.append(item)
        if on_item:
            on_item(item)
        if progress:
            progress("batch", done, len(todo))
    return items


def speak_batch(
    speech: str | Path | None,
    sources: Iterable[str | Path],
    out_dir: str | Path,
    *,
    text: str | None = None,
    config: AnimateConfig | None = None,
    log: Log | None = None,
    progress: Progress | None = None,
    **batch,
) -> list[BatchItem]:
    """Make many portraits say one speech (or `text`), read (or synthesized) once.

    Same contract as `animate_batch` (failures reported and skipped, existing outputs skipped
    unless `overwrite`, `shard`, `workers`); outputs are named `SOURCE-stem_SPEECH-stem.mp4`.
    """
    import tempfile

    config = config or AnimateConfig()
    with tempfile.TemporaryDirectory(prefix="talkanim-speech-") as workdir:
        prepared = prepare_speech(speech, text=text, workdir=workdir, session=Session(config, log=log),
                                  progress=progress)
        return animate_batch(prepared, sources, out_dir, config=config, log=log, progress=progress, **batch)


def _animate_item(source: str, driver: Driver | PreparedSpeech, out: Path, session: Session) -> BatchItem:
    try:
        run = speak if isinstance(driver, PreparedSpeech) else animate
        result = run(source, driver, out, session=session)
    except TalkanimError as error:
        return BatchItem(source, str(out), "failed", error=str(error))
    return BatchItem(source, str(out), "ok", result=result)


def _run_parallel(todo, driver: Driver, config: AnimateConfig, workers: int) -> Iterator[BatchItem]:
    """Spread portraits over processes; each one builds its own detector once."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = mp.get_context("spawn")  # torch and dlib are not fork-safe once used
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(config, threads))
    futures = []
    try:
        futures = [pool.submit(_worker_animate, src, driver, out) for src, out in todo]
        for future in futures:
            yield future.result()
    except BaseException:
        # Ctrl-C, SIGTERM (or the caller stopped): drop what has not started, and stop the
        # running portraits now -- SIGTERM makes a worker abort its writer (ffmpeg killed,
        # temporary file deleted) -- instead of shutdown() waiting for every queued item.
        for future in futures:
            future.cancel()
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool, grace_s: float = 3.0) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)


_WORKER: dict = {}  # per-process state of a batch worker (lives only in worker processes)


def _init_worker(config: AnimateConfig, threads: int) -> None:
    import signal

    import torch

    # Ctrl-C is the parent's to handle (it reaches the whole process group); SIGTERM from the
    # parent stops the portrait being rendered, with its cleanup, and nothing after it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop)
    torch.set_num_threads(threads)
    _WORKER["session"] = Session(config)


def _worker_stop(signum, frame) -> None:
    _WORKER["stop"] = True
    if _WORKER.get("busy"):
        raise KeyboardInterrupt  # unwinds animate(): the writer deletes its temporary file
    os._exit(128 + signum)


def _worker_animate(source: str, driver: Driver, out: Path) -> BatchItem:
    if _WORKER.get("stop"):
        return BatchItem(source, str(out), "failed", error="interrupted")
    _WORKER["busy"] = True
    try:
        return _animate_item(source, driver, out, _WORKER["session"])
    finally:
        _WORKER["busy"] = False


def _batch_outputs(sources: list[str], driver: str | Path, out_dir: Path) -> list[Path]:
    """`stem_driverstem.mp4` per source; sources sharing a stem keep their extension too."""
    stems = [Path(s).stem for s in sources]
    names = []
    for src, stem in zip(sources, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}-{Path(src).suffix.lstrip('.')}"
        names.append(out_dir / f"{stem}_{Path(driver).stem}.mp4")
    return names


def _driver_frames(driver: Driver, indices: np.ndarray) -> Iterator[np.ndarray]:
    """Driver frames at `indices` (ascending) for the preview, streamed."""
    if driver.video is None:
        width, height = driver.track.size
        for i in indices:
            yield _draw_points(np.zeros((height, width, 3), np.uint8), driver.track.points[i])
        return
    wanted = iter(indices.tolist())
    target = next(wanted, None)
    last = None
    frames = iter_frames(driver.path, info=driver.video)
    try:
        for i, frame in enumerate(frames):
            last = frame
            while target is not None and target == i:
                yield frame
                target = next(wanted, None)
            if target is None:
                return
        while target is not None and last is not None:  # the decoder gave fewer frames
            yield last
            target = next(wanted, None)
    finally:
        frames.close()


def _draw_points(canvas: np.ndarray, points: np.ndarray) -> np.ndarray:
    import cv2

    for x, y in points.astype(int):
        cv2.circle(canvas, (int(x), int(y)), 2, (255, 255, 255), -1)
    return canvas


def _resample_indices(num_frames: int, fps_in: float, fps_out: float) -> np.ndarray:
    """Which driver frame each output frame shows, when the output frame rate differs."""
    if abs(fps_in - fps_out) < 1e-6:
        return np.arange(num_frames)
    count = max(1, int(round(num_frames * fps_out / fps_in)))
    return np.minimum(np.round(np.arange(count) * fps_in / fps_out).astype(int), num_frames - 1)


def _existing_file(path: str | Path, role: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{role} not found: {path}")
    if not path.is_file():
        raise InputError(f"{role} is not a file: {path}")
    return path.resolve()


def _output_path(output: str | Path | None, source: Path, driver: Path) -> Path | str:
    if output == "-":
        return "-"
    out = Path(output) if output is not None else default_output(source, driver)
    if out.suffix.lower() != ".mp4":
        raise OutputError(f"output must be an .mp4 file: {out}")
    if out.exists() and out.resolve() in (source, driver):
        raise OutputError(f"output would overwrite an input: {out}")
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    return out


def ensure_writable_dir(folder: Path) -> None:
    """Create `folder` if needed; OutputError when it cannot hold an output."""
    folder = folder if str(folder) else Path(".")
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as error:
            raise OutputError(f"cannot create output folder {folder}: {error.strerror}") from None
    if not folder.is_dir():
        raise OutputError(f"output folder is not a folder: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {folder}")


__all__ = [
    "AnimateConfig",
    "AnimateResult",
    "BatchItem",
    "Driver",
    "Face",
    "MotionTrack",
    "PreparedSpeech",
    "Session",
    "SpeakResult",
    "animate",
    "animate_batch",
    "default_output",
    "load_driver",
    "prepare_speech",
    "speak",
    "speak_batch",
]
