"""The `talkanim` command line: a thin Typer layer over `talkanim.api`.

Results go to stdout (`--json` for machines); logs, progress bars and errors go to stderr.
Exit codes: 0 ok, 1 some items of a batch failed, 2 bad input or usage, 3 no face, 4 output
cannot be written, 5 bad weights, 6 backend unavailable, 70 internal error, 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from talkanim.config import (AnimateConfig, MotionConfig, NeuralConfig, RenderConfig, SpeechConfig,
                             SpeechTrainConfig, TrackConfig)
from talkanim.errors import InputError, TalkanimError

app = typer.Typer(
    name="talkanim",
    help="Make a still portrait talk and move like the person in a driving video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
STAGE_LABELS = {
    "track": "tracking driver", "finetune": "fine-tuning", "render": "rendering", "batch": "portraits",
    "self": "self-reenactment", "cross": "cross-reenactment", "prepare": "videos", "train": "training",
    "speech": "reading speech", "lipsync": "lip-sync clips", "fold": "folds",
}


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so that cleanup runs as for Ctrl-C."""


# -- options shared by several commands ---------------------------------------------------
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or log lines.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")]
Json = Annotated[bool, typer.Option("--json", help="Print results as JSON lines on stdout.")]
Landmarks = Annotated[
    str, typer.Option("--landmarks", help="Landmark backend: auto (= mesh), mesh (face mesh with iris, offline, sees blinks), dlib (offline, 68 points), fan (face-alignment; downloads its weights once).")
]
Motion = Annotated[
    str, typer.Option("--motion", help="relative: the driver's motion on the portrait's own face; absolute: the driver's landmarks as they are.")
]
Size = Annotated[int, typer.Option("--size", min=64, max=1024, help="Working resolution of the face crop.")]
FaceIndex = Annotated[
    Optional[int], typer.Option("--face-index", min=0, help="Which face of the portrait, by size (0 = largest).")
]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu or cuda.")]
Model = Annotated[
    str, typer.Option("--model", envvar="TALKANIM_MODEL", help="hybrid (warp + neural correction), paper (neural painting), none (warp only); auto: hybrid when weights are installed.")
]
Weights = Annotated[Optional[Path], typer.Option("--weights", help="Model weights (.safetensors) or a training run folder. [default: the shipped weights]")]
Shot = Annotated[Optional[list[Path]], typer.Option("--shot", help="Another picture of the same person (repeatable).")]
ShotsDir = Annotated[Optional[Path], typer.Option("--shots", help="A folder of more pictures of the same person.")]
ShotBlend = Annotated[
    int, typer.Option("--shot-blend", min=1, help="With several shots: blend each frame from this many of the nearest (1: only the nearest).")
]
FinetuneSteps = Annotated[
    Optional[int], typer.Option("--finetune-steps", min=0, envvar="TALKANIM_FINETUNE_STEPS", help="Few-shot fine-tuning steps (0: feed-forward). [default: about a minute on a CPU]")
]

Seed = Annotated[int, typer.Option("--seed", help="Seed of the idle motion (head sway, blinks, gaze): another seed, another performance.")]
Pose = Annotated[Optional[Path], typer.Option("--pose", help="Head pose, blinks and gaze from this video (any face; its audio is ignored). [default: natural idle motion]")]
Mouth = Annotated[str, typer.Option("--mouth", help="Speech -> mouth model: auto (the shipped default), learned, loudness (the loudness baseline).")]
SpeakText = Annotated[Optional[str], typer.Option("--text", help="Words to speak, synthesized offline by espeak-ng (instead of SPEECH).")]
Voice = Annotated[str, typer.Option("--voice", help="espeak-ng voice for --text (espeak-ng --voices lists them).")]
SpeechWeights = Annotated[Optional[Path], typer.Option("--speech-weights", help="Speech model (.safetensors) or a train-speech run folder. [default: the shipped one]")]

def main() -> None:
    """Entry point of the `talkanim` console script."""
    app()


@app.command()
def animate(
    source: Annotated[Path, typer.Argument(help="The portrait: a photo or a painting.", show_default=False)],
    driver: Annotated[Path, typer.Argument(help="The driving video, or a landmark track (.npz).", show_default=False)],
    output: Annotated[
        Optional[str], typer.Option("--output", "-o", help="Output MP4, or - for stdout. [default: SOURCE_DRIVER.mp4]")
    ] = None,
    landmarks: Landmarks = "auto",
    motion: Motion = "relative",
    driver_ref: Annotated[
        Optional[int], typer.Option("--driver-ref", min=0, help="The driver's neutral frame. [default: frame 0 for the pose, the most neutral frames for the expression]")
    ] = None,
    head_motion: Annotated[bool, typer.Option("--head-motion/--no-head-motion", help="Carry the driver's head motion.")] = True,
    size: Size = 256,
    face_index: FaceIndex = None,
    fps: Annotated[Optional[float], typer.Option("--fps", min=1.0, help="Output frame rate. [default: the driver's]")] = None,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Copy the driver's audio.")] = True,
    preview: Annotated[bool, typer.Option("--preview", help="Show source | driver | result side by side.")] = False,
    model: Model = "auto",
    weights: Weights = None,
    shot: Shot = None,
    shots_dir: ShotsDir = None,
    shot_blend: ShotBlend = MotionConfig.shot_blend,
    finetune_steps: FinetuneSteps = None,
    person: Annotated[Optional[Path], typer.Option("--person", help="A person saved with --save-person: no fine-tuning.")] = None,
    save_person: Annotated[Optional[Path], typer.Option("--save-person", help="Save the fine-tuned person (.safetensors).")] = None,
    device: Device = "auto",
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Animate SOURCE with the expressions and head motion of DRIVER.

    Example: talkanim animate mona_lisa.jpg driver.mp4 -o mona.mp4
    """
    from talkanim import api

    if json_out and output == "-":
        _usage_error("--json and -o - both want stdout; choose one")
    config = _animate_config(landmarks, motion, driver_ref, head_motion, size, face_index, fps, audio, preview, device)
    with _command(quiet, debug) as ui:
        config.neural = NeuralConfig(
            model=_choice("--model", model, ("auto", "hybrid", "paper", "none")),
            weights=weights, finetune_steps=finetune_steps, person=person, save_person=save_person,
        )
        config.shots = tuple(shot or ()) + _folder_images(shots_dir)
        config.motion.shot_blend = shot_blend
        session = api.Session(config, log=ui.log)
        result = api.animate(source, driver, output, session=session, progress=ui.progress)
        ui.finish()
        if json_out:
            _print_json(result.to_json())
        elif output != "-":
            ui.log(
                f"wrote {result.output}: {result.frames} frames, {result.width}x{result.height}, "
                f"{result.fps:g} fps, {'with' if result.audio else 'no'} audio, {result.seconds:.1f} s"
            )
            if result.driver_frames_without_face:
                ui.log(f"{result.driver_frames_without_face} driver frames had no face and were held")


@app.command()
def speak(
    source: Annotated[Path, typer.Argument(help="The portrait: a photo or a painting.", show_default=False)],
    speech: Annotated[Optional[Path], typer.Argument(help="The speech: any audio file (wav, mp3, m4a, ogg, ...) or a video whose audio is used.", show_default=False)] = None,
    output: Annotated[
        Optional[str], typer.Option("--output", "-o", help="Output MP4, or - for stdout. [default: SOURCE_SPEECH.mp4]")
    ] = None,
    text: SpeakText = None,
    voice: Voice = SpeechConfig.voice,
    pose: Pose = None,
    seed: Seed = 0,
    mouth: Mouth = "auto",
    mouth_gain: Annotated[float, typer.Option("--mouth-gain", min=0.0, max=3.0, help="Scale the mouth's motion.")] = 1.0,
    head_motion: Annotated[bool, typer.Option("--head-motion/--no-head-motion", help="Move the head (idle sway or the pose video).")] = True,
    landmarks: Landmarks = "auto",
    size: Size = 256,
    face_index: FaceIndex = None,
    fps: Annotated[Optional[float], typer.Option("--fps", min=1.0, help="Output frame rate. [default: 25, or the pose video's]")] = None,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Carry the speech's audio.")] = True,
    preview: Annotated[bool, typer.Option("--preview", help="Show source | motion | result side by side.")] = False,
    model: Model = "auto",
    weights: Weights = None,
    speech_weights: SpeechWeights = None,
    shot: Shot = None,
    shots_dir: ShotsDir = None,
    finetune_steps: FinetuneSteps = None,
    device: Device = "auto",
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Make SOURCE talk: lips in sync with SPEECH (or --text), head and eyes alive.

    Examples: talkanim speak mona_lisa.jpg guide.mp3 -o mona.mp4;
    talkanim speak mona_lisa.jpg --text "Good evening." --seed 3
    """
    from talkanim import api

    if json_out and output == "-":
        _usage_error("--json and -o - both want stdout; choose one")
    if (speech is None) == (text is None):
        _usage_error("give SPEECH (an audio or video file) or --text, one of them")
    if text is not None and not text.strip():
        _usage_error("--text is empty: give the words to speak")
    config = _animate_config(landmarks, "relative", None, head_motion, size, face_index, fps, audio, preview, device)
    config.speech = SpeechConfig(mouth=_choice("--mouth", mouth, ("auto", "learned", "loudness")), mouth_gain=mouth_gain,
                                 seed=seed, pose=pose, voice=voice, weights=speech_weights)
    with _command(quiet, debug) as ui:
        config.neural = NeuralConfig(model=_choice("--model", model, ("auto", "hybrid", "paper", "none")),
                                     weights=weights, finetune_steps=finetune_steps)
        config.shots = tuple(shot or ()) + _folder_images(shots_dir)
        session = api.Session(config, log=ui.log)
        result = api.speak(source, speech, output, text=text, session=session, progress=ui.progress)
        ui.finish()
        if json_out:
            _print_json(result.to_json())
        elif output != "-":
            ui.log(
                f"wrote {result.output}: {result.frames} frames, {result.width}x{result.height}, "
                f"{result.fps:g} fps, {result.speech_seconds:.1f} s of speech, mouth: {result.mouth}, "
                f"motion: {result.pose} (seed {result.seed}), {result.seconds:.1f} s"
            )


@app.command()
def batch(
    driver: Annotated[Optional[Path], typer.Argument(help="The driving video (or .npz track) for every portrait (not with --speech / --text).", show_default=False)] = None,
    sources: Annotated[Optional[str], typer.Argument(help="A folder of portraits, or - to read paths from stdin (one per line).", show_default=False)] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for the MP4s.", show_default=False)] = None,
    speech: Annotated[Optional[Path], typer.Option("--speech", help="Make every portrait say this speech (audio, or a video's audio) instead of following a driver.")] = None,
    text: SpeakText = None,
    pose: Pose = None,
    seed: Seed = 0,
    mouth: Mouth = "auto",
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Portraits rendered in parallel processes.")] = 1,
    shard: Annotated[str, typer.Option("--shard", help="K/N: take every N-th portrait starting at K (0 <= K < N).")] = "0/1",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo outputs that already exist.")] = False,
    landmarks: Landmarks = "auto",
    motion: Motion = "relative",
    size: Size = 256,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Copy the driver's audio.")] = True,
    model: Model = "auto",
    weights: Weights = None,
    finetune_steps: FinetuneSteps = None,
    device: Device = "auto",
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Animate every portrait of a folder (or of stdin) with one driver, or one speech.

    Exit code 0 when all succeeded, 1 when some failed (the others are still rendered).
    Examples: find paintings -name '*.jpg' | talkanim batch driver.mp4 - -o out/ --json;
    talkanim batch --speech guide.mp3 paintings/ -o out/
    """
    from talkanim import api
    from talkanim.io import is_image_path

    talking = speech is not None or text is not None
    if speech is not None and text is not None:
        _usage_error("--speech and --text: give one of them")
    if text is not None and not text.strip():
        _usage_error("--text is empty: give the words to speak")
    if talking and sources is None:  # `batch --speech guide.mp3 paintings/`: one positional
        driver, sources = None, None if driver is None else str(driver)
    elif talking:
        _usage_error("with --speech or --text, give the portraits only (no driver)")
    if sources is None or (driver is None and not talking):
        _usage_error("give a DRIVER and the portraits (or --speech FILE and the portraits)")
    if out_dir is None:
        _usage_error("missing option '--output' / '-o': the folder for the MP4s")
    shard_pair = _parse_shard(shard)
    config = _animate_config(landmarks, motion, None, True, size, None, None, audio, False, device)
    config.speech = SpeechConfig(mouth=_choice("--mouth", mouth, ("auto", "learned", "loudness")), seed=seed, pose=pose)
    config.neural = NeuralConfig(
        model=_choice("--model", model, ("auto", "hybrid", "paper", "none")),
        weights=weights, finetune_steps=finetune_steps,
    )
    with _command(quiet, debug) as ui:
        if sources == "-":
            paths = [line.strip() for line in sys.stdin if line.strip()]
        else:
            folder = Path(sources)
            if not folder.is_dir():
                raise InputError(f"not a folder: {folder} (use - to read paths from stdin)")
            paths = [str(p) for p in sorted(folder.iterdir()) if p.is_file() and is_image_path(p)]
        if not paths:
            raise InputError("no portraits to animate")

        def report(item: api.BatchItem) -> None:
            if json_out:
                _print_json(item.to_json())
            elif item.status == "failed":
                ui.log(f"failed: {item.source}: {item.error}")

        common = dict(config=config, shard=shard_pair, overwrite=overwrite, workers=workers, log=ui.log,
                      progress=ui.progress, on_item=report)
        if talking:
            items = api.speak_batch(speech, paths, out_dir, text=text, **common)
        else:
            items = api.animate_batch(driver, paths, out_dir, **common)
        ui.finish()
        if not json_out:
            _print_batch_table(items)
        if any(item.status == "failed" for item in items):
            raise typer.Exit(1)


@app.command("landmarks")
def landmarks_command(
    video: Annotated[Path, typer.Argument(help="A video with a face.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Track file. [default: VIDEO-stem.npz]")] = None,
    landmarks: Landmarks = "auto",
    device: Device = "auto",
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Track the 68 face landmarks and pupils of VIDEO (with the mesh backend, the default, also
    its 478-point face mesh) and save them as a .npz track.

    `talkanim animate portrait.jpg track.npz` then animates without decoding the video.
    """
    from talkanim import api
    from talkanim.io import atomic_output
    from talkanim.landmarks import save_track

    out = output or Path.cwd() / f"{video.stem}.npz"
    if out.suffix != ".npz":
        _usage_error(f"track files end in .npz: {out}")
    config = AnimateConfig(track=TrackConfig(backend=landmarks), device=device)
    with _command(quiet, debug) as ui:
        api.ensure_writable_dir(out.parent)
        driver = api.load_driver(video, session=api.Session(config, log=ui.log), progress=ui.progress)
        with atomic_output(out) as tmp:
            save_track(tmp, driver.track)
        ui.finish()
        summary = {
            "video": str(video), "output": str(out), "frames": driver.track.num_frames,
            "frames_without_face": driver.track.num_missing, "fps": driver.track.fps,
            "landmarks": driver.track.backend,
        }
        if json_out:
            _print_json(summary)
        else:
            ui.log(f"wrote {out}: {summary['frames']} frames ({summary['frames_without_face']} without a face)")


@app.command()
def evaluate(
    videos: Annotated[list[Path], typer.Argument(help="Same-person clips of people not in training.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Folder for report.md, results.json, chart.png, grid.png.")] = Path("report"),
    shots: Annotated[str, typer.Option("--shots", help="Numbers of shots T, comma-separated.")] = "1,8,32",
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: copy, warp, paper, hybrid.")] = "copy,warp,paper,hybrid",
    portraits: Annotated[Optional[list[Path]], typer.Option("--portrait", help="Portraits for cross-reenactment (repeatable).")] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Driver frames scored per clip.")] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Score every N-th driver frame.")] = 1,
    finetune_steps: Annotated[int, typer.Option("--finetune-steps", min=0, help="Few-shot fine-tuning steps for paper/hybrid (0: feed-forward).")] = 0,
    csim_frames: Annotated[int, typer.Option("--csim-frames", min=1, help="Frames per clip where CSIM is measured.")] = 8,
    shot_blend: ShotBlend = MotionConfig.shot_blend,
    lipsync: Annotated[bool, typer.Option("--lipsync", help="Instead: the lip-sync protocol of `speak` (each clip's own audio drives the speech -> mouth models; its tracked mouth is the reference).")] = False,
    speech_weights: SpeechWeights = None,
    hybrid_weights: Annotated[Optional[Path], typer.Option("--hybrid-weights", help="Weights (.safetensors) or a training run folder for the hybrid method. [default: the shipped ones]")] = None,
    paper_weights: Annotated[Optional[Path], typer.Option("--paper-weights", help="Weights (.safetensors) or a training run folder for the paper method. [default: the shipped ones]")] = None,
    device: Device = "auto",
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Score methods against real frames (self-reenactment) and across people; with --lipsync,
    score speech -> mouth against each clip's own video.

    Examples: talkanim evaluate clip1.mp4 clip2.mp4 --shots 1,8 --methods copy,warp -o report/;
    talkanim evaluate clips/*.mp4 --methods warp,hybrid --hybrid-weights run/ -o mine/;
    talkanim evaluate clips/*.mp4 --lipsync -o lipsync/
    """
    from talkanim.evaluate import evaluate as run_evaluation

    if lipsync:
        from talkanim.evaluate.lipsync import evaluate_lipsync

        with _command(quiet, debug) as ui:
            report = evaluate_lipsync(videos, out_dir, weights=speech_weights, progress=ui.progress, log=ui.log)
            ui.finish()
            if json_out:
                _print_json(report.results)
            else:
                ui.log(f"wrote {report.report_md} ({report.seconds:.0f} s)")
        return

    try:
        shot_counts = [int(t) for t in shots.split(",") if t.strip()]
    except ValueError:
        _usage_error(f"--shots wants comma-separated numbers, e.g. 1,8,32 (got {shots!r})")
    method_names = [m.strip() for m in methods.split(",") if m.strip()]
    with _command(quiet, debug) as ui:
        report = run_evaluation(
            videos, out_dir, shots=shot_counts, methods=method_names, max_frames=max_frames,
            every=every, portraits=portraits or [], device=device, progress=ui.progress,
            log=ui.log, csim_frames=csim_frames, finetune_steps=finetune_steps, shot_blend=shot_blend,
            weights={k: v for k, v in (("hybrid", hybrid_weights), ("paper", paper_weights)) if v is not None},
        )
        ui.finish()
        if json_out:
            _print_json(report.results)
        else:
            ui.log(f"wrote {report.report_md} ({report.seconds:.0f} s)")


@app.command()
def prepare(
    videos: Annotated[list[Path], typer.Argument(help="Talking-head videos or folders of them.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Dataset folder (shards + manifest.json).")],
    image_size: Annotated[int, typer.Option("--image-size", min=32, help="Face crop size in pixels.")] = 128,
    frames_per_video: Annotated[int, typer.Option("--frames-per-video", min=2, help="Frames sampled from each video.")] = 32,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.0, max=0.9, help="Share of identities held out for validation.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the train/validation split.")] = 0,
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Turn talking-head videos into a training set: aligned face crops + landmarks per video.

    Example: talkanim prepare ../shared/data/videos -o dataset/
    """
    from talkanim.train import prepare_dataset

    with _command(quiet, debug) as ui:
        report = prepare_dataset(
            videos, out_dir, image_size=image_size, frames_per_video=frames_per_video,
            val_fraction=val_fraction, seed=seed,
            progress=lambda done, total, _message: ui.progress("prepare", done, total),
        )
        ui.finish()
        for video, reason in report.skipped:
            ui.log(f"skipped {video}: {reason}")
        summary = {
            "dataset": str(out_dir), "videos": len(report.videos), "train_videos": report.num_train,
            "skipped": len(report.skipped), "identities": report.identities, "seconds": round(report.seconds, 1),
        }
        if json_out:
            _print_json(summary)
        else:
            ui.log(f"wrote {report.manifest}: {len(report.videos)} videos ({report.num_train} train), "
                   f"{len(report.skipped)} skipped")


@app.command()
def train(
    dataset: Annotated[Path, typer.Argument(help="A folder written by `talkanim prepare`.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Run folder: checkpoints, log, model.safetensors.")],
    preset: Annotated[str, typer.Option("--preset", help="Model size: tiny (CPU), small, paper (GPU).")] = "tiny",
    mode: Annotated[str, typer.Option("--mode", help="hybrid or paper.")] = "hybrid",
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=32, help="Train at this crop size. [default: the preset's]")] = None,
    shots: Annotated[int, typer.Option("--shots", min=1, help="T: frames embedded per episode.")] = 8,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Episodes per step and process.")] = 4,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Total optimizer steps.")] = 1000,
    time_budget: Annotated[Optional[float], typer.Option("--time-budget", min=1.0, help="Stop and checkpoint after this many seconds.")] = None,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=1, help="Steps between checkpoints.")] = 200,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's last complete checkpoint.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation and episode sampling.")] = 0,
    ema: Annotated[bool, typer.Option("--ema", help="Keep and export an exponential moving average of G.")] = False,
    lr_g: Annotated[float, typer.Option("--lr-g", min=0.0, help="Learning rate of the embedder and generator.")] = 5e-5,
    lr_d: Annotated[float, typer.Option("--lr-d", min=0.0, help="Learning rate of the discriminator.")] = 2e-4,
    adversarial: Annotated[bool, typer.Option("--adversarial/--content-only", help="Train with the discriminator (the paper) or with content losses only (no discriminator step).")] = True,
    device: Device = "auto",
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Meta-learn the embedder, generator and discriminator on a prepared dataset.

    On several processes: torchrun --nproc-per-node 2 -m talkanim train dataset/ -o run/
    """
    import os

    from talkanim.train import TrainConfig
    from talkanim.train import train as run_training

    _choice("--mode", mode, ("hybrid", "paper"))
    _choice("--device", device, ("auto", "cpu", "cuda"))
    rank = int(os.environ.get("RANK", "0"))
    config = TrainConfig(
        dataset=dataset, out_dir=out_dir, preset=preset, mode=mode, image_size=image_size, shots=shots,
        batch_size=batch_size, max_steps=max_steps, time_budget_s=time_budget,
        checkpoint_every=checkpoint_every, resume=resume, seed=seed, ema=ema, device=device,
        lr_g=lr_g, lr_d=lr_d, adversarial=adversarial,
    )
    with _command(quiet or rank != 0, debug) as ui:
        def show(step: int, total: int, metrics: dict[str, float]) -> None:
            losses = " ".join(f"{k} {metrics[k]:.4f}" for k in ("l1", "msssim", "adv", "loss_d") if k in metrics)
            ui.progress("train", step, total, losses)

        result = run_training(config, progress=show)
        ui.finish()
        if rank != 0:
            return
        summary = {
            "run": str(out_dir), "weights": str(result.weights), "step": result.step,
            "steps_per_s": round(result.steps_per_s, 3), "stopped": result.stopped,
            "held_start": result.held_start, "held_end": result.held_end,
        }
        if json_out:
            _print_json(summary)
        else:
            ui.log(f"trained to step {result.step} ({result.stopped}, {result.steps_per_s:.2f} steps/s); "
                   f"weights: {result.weights}")


@app.command("prepare-speech")
def prepare_speech_command(
    videos: Annotated[list[Path], typer.Argument(help="Talking clips with their own speech, or folders of them.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Dataset folder (clips.safetensors + manifest.json).")],
    licences: Annotated[Optional[Path], typer.Option("--licences", help="A MANIFEST.tsv with path and license columns: clips whose licence may not train shipped weights go to the test split.")] = None,
    train_licence: Annotated[Optional[list[str]], typer.Option("--train-licence", help="A licence that may train (repeatable). [default: MIT, Apache-2.0, CC-BY-4.0]")] = None,
    landmarks: Annotated[str, typer.Option("--landmarks", help="Landmark backend of the mouth targets: dlib (the shipped weights'), auto (= mesh), mesh, fan.")] = "dlib",
    cache: Annotated[Path, typer.Option("--cache", help="Folder caching the clips' landmark tracks.")] = Path("runs/tracks"),
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.0, max=0.9, help="Share of the trainable people held out for validation.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the train/validation split.")] = 0,
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Turn talking clips into a speech -> mouth training set, split by person.

    Example: talkanim prepare-speech ../shared/data/videos --licences ../shared/data/MANIFEST.tsv -o speech-data/
    """
    from talkanim.speech.dataset import TRAIN_LICENCES, prepare_speech_dataset

    _choice("--landmarks", landmarks, ("auto", "mesh", "dlib", "fan"))
    with _command(quiet, debug) as ui:
        report = prepare_speech_dataset(
            videos, out_dir, backend=landmarks, cache_dir=cache, licences=licences,
            train_licences=tuple(train_licence or TRAIN_LICENCES), val_fraction=val_fraction, seed=seed,
            progress=lambda done, total, _name: ui.progress("prepare", done, total),
        )
        ui.finish()
        for video, reason in report.skipped:
            ui.log(f"skipped {video}: {reason}")
        summary = {"dataset": str(out_dir), "clips": len(report.clips), "skipped": len(report.skipped),
                   "people": {k: len(v) for k, v in report.people.items()}, "seconds": round(report.seconds, 1)}
        if json_out:
            _print_json(summary)
        else:
            counts = ", ".join(f"{len(v)} {k}" for k, v in report.people.items())
            ui.log(f"wrote {report.manifest}: {len(report.clips)} clips ({counts} people), {len(report.skipped)} skipped")


@app.command("train-speech")
def train_speech_command(
    dataset: Annotated[Path, typer.Argument(help="A folder written by `talkanim prepare-speech`.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Run folder: speech.safetensors, metrics.json.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")] = SpeechTrainConfig.steps,
    coefs: Annotated[int, typer.Option("--coefs", min=1, max=32, help="PCA components of the mouth shape.")] = SpeechTrainConfig.coefs,
    channels: Annotated[int, typer.Option("--channels", min=4, help="Width of the network.")] = SpeechTrainConfig.channels,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (one-cycle schedule).")] = SpeechTrainConfig.lr,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation, sampling and the folds.")] = 0,
    folds: Annotated[Optional[int], typer.Option("--folds", min=2, help="Instead: person-level K-fold cross-validation over the train and validation people (writes cross_validation.json, no weights).")] = None,
    json_out: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train the speech -> mouth model (and fit the loudness baseline) on a prepared dataset.

    The learned model is marked the default only if it beats the baseline on the validation people.
    Example: talkanim train-speech speech-data/ -o runs/speech/ && talkanim speak face.jpg talk.mp3 --speech-weights runs/speech/
    """
    import torch

    from talkanim.speech.train import train_speech

    config = SpeechTrainConfig(steps=steps, coefs=coefs, channels=channels, lr=lr, seed=seed)
    if folds is not None:
        _cross_validate_speech(dataset, out_dir, config, folds, json_out, quiet, debug)
        return
    with _command(quiet, debug) as ui:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        result = train_speech(
            dataset, out_dir, config, log=ui.log,
            progress=lambda step, total, m: ui.progress("train", step, total, f"loss {m['loss']:.3f} val r {m['val_r']:.3f}"),
        )
        ui.finish()
        val = result.summary.get("val", {})
        summary = {"run": str(out_dir), "weights": str(result.weights), "default": result.default,
                   "val": {k: val.get(k, {}).get("r") for k in ("learned", "loudness")}, "seconds": result.seconds}
        if json_out:
            _print_json(summary)
        else:
            ui.log(f"wrote {result.weights}; validation r: learned {summary['val']['learned']}, loudness "
                   f"{summary['val']['loudness']}; default mouth: {result.default}")


def _cross_validate_speech(dataset: Path, out_dir: Path, config: SpeechTrainConfig, folds: int,
                           json_out: bool, quiet: bool, debug: bool) -> None:
    """`train-speech --folds K`: RUN/cross_validation.json and a one-line verdict."""
    from talkanim import api
    from talkanim.evaluate.report import write_json
    from talkanim.speech.train import cross_validate

    with _command(quiet, debug) as ui:
        api.ensure_writable_dir(out_dir)
        result = cross_validate(dataset, config, folds, progress=lambda k, total, _: ui.progress("fold", k, total))
        ui.finish()
        write_json(out_dir / "cross_validation.json", result)
        summary = result["summary"]
        verdict = {"folds": folds, "clips": summary["learned"]["clips"],
                   **{f"{method}_{key}": summary[method][key] for method in ("learned", "loudness")
                      for key in ("r", "closure")},
                   "learned_better_r": summary["versus"]["r"]["better_clips"]}
        if json_out:
            _print_json(verdict)
        else:
            ui.log(f"wrote {out_dir / 'cross_validation.json'}: {verdict['clips']} held-out clips in {folds} folds; "
                   f"mouth-opening r learned {verdict['learned_r']:.3f}, loudness {verdict['loudness_r']:.3f} "
                   f"(learned better on {verdict['learned_better_r']}); bilabial closures {verdict['learned_closure']:.2f} "
                   f"vs {verdict['loudness_closure']:.2f}")


# -- helpers --------------------------------------------------------------------------------
def _animate_config(landmarks, motion, driver_ref, head_motion, size, face_index, fps, audio, preview, device) -> AnimateConfig:
    _choice("--landmarks", landmarks, ("auto", "mesh", "dlib", "fan"))
    _choice("--motion", motion, ("relative", "absolute"))
    _choice("--device", device, ("auto", "cpu", "cuda"))
    return AnimateConfig(
        track=TrackConfig(backend=landmarks),
        motion=MotionConfig(mode=motion, driver_ref=driver_ref, head_motion=head_motion),
        render=RenderConfig(size=size, preview=preview),
        device=device,
        face_index=face_index,
        fps=fps,
        audio=audio,
    )


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        _usage_error(f"{option} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def _folder_images(folder: Path | None) -> tuple[Path, ...]:
    """The pictures of a --shots folder, sorted."""
    from talkanim.io import is_image_path

    if folder is None:
        return ()
    if not folder.is_dir():
        raise InputError(f"--shots is not a folder: {folder}")
    return tuple(p for p in sorted(folder.iterdir()) if p.is_file() and is_image_path(p))


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        _usage_error(f"--shard wants K/N, e.g. 0/4 (got {text!r})")
    if n < 1 or not 0 <= k < n:
        _usage_error(f"--shard K/N needs 0 <= K < N (got {text!r})")
    return k, n


def _usage_error(message: str) -> None:
    _print_error(message)
    raise typer.Exit(2)


def _print_json(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _print_batch_table(items) -> None:
    table = Table(title="talkanim batch")
    for column in ("source", "status", "output / error"):
        table.add_column(column)
    style = {"ok": "green", "failed": "red", "skipped": "yellow"}
    for item in items:
        table.add_row(item.source, f"[{style[item.status]}]{item.status}[/]", item.error or item.output)
    Console().print(table)
    counts = {s: sum(i.status == s for i in items) for s in ("ok", "failed", "skipped")}
    Console(stderr=True, soft_wrap=True).print(
        f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped", highlight=False
    )


class _UI:
    """Log lines and Rich progress bars on stderr (nothing with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.console = Console(stderr=True, soft_wrap=True)
        self.quiet = quiet
        self._bars: Progress | None = None
        self._tasks: dict[str, int] = {}

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False, markup=False)

    def progress(self, stage: str, done: int, total: int | None, info: str = "") -> None:
        """Advance the bar of `stage`; `info` is shown after it (e.g. training losses)."""
        if self.quiet:
            return
        if self._bars is None:
            self._bars = Progress(
                TextColumn("{task.description:>16}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console, transient=False,
            )
            self._bars.start()
        if stage not in self._tasks:
            self._tasks[stage] = self._bars.add_task(STAGE_LABELS.get(stage, stage), total=total, info=info)
        self._bars.update(self._tasks[stage], completed=done, total=max(total or 0, done), info=info)

    def finish(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None


@contextmanager
def _command(quiet: bool, debug: bool):
    """Run a command's body: one clear line and an exit code for every failure."""
    ui = _UI(quiet)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield ui
    except TalkanimError as error:
        ui.finish()
        _fail(str(error), error.exit_code, debug)
    except KeyboardInterrupt:
        ui.finish()
        _fail("interrupted", EXIT_INTERRUPTED, debug)
    except Terminated:
        ui.finish()
        _fail("terminated", EXIT_TERMINATED, debug)
    except typer.Exit:
        ui.finish()
        raise
    except Exception as error:  # a bug: keep it to one line unless asked
        ui.finish()
        _fail(f"internal error: {type(error).__name__}: {error} (rerun with --debug for details)", EXIT_INTERNAL, debug)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    _print_error(message)
    raise typer.Exit(code)


def _print_error(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(Text.assemble(("error: ", "red"), message))

