"""talkanim benchmarks: the speed and memory figures of DESIGN.md ("Performance targets"),
each measured in ONE run beside its target and a reference measured in the same run.

    python -m benchmarks            # full run (< 10 min on 2 CPU cores)
    python -m benchmarks --quick    # seconds: tiny sizes, for CI (figures are not comparable)
    python -m benchmarks --json     # the rows as JSON instead of the Markdown table

Timings on a shared machine are noisy: every figure is the best of a few repeats, and CPU
time (this process + its children: ffmpeg, subprocesses) is reported next to wall time.
Drivers come from the shared data folder (TALKANIM_DATA, default ../shared/data) when present,
else from examples/driver.mp4; the benchmark pads/scales/loops them to 640x360, 25 fps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/run.py`
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

# The rows every run reports (the test checks them all).
ROW_KEYS = (
    "track_dlib", "track_mesh", "track_fan", "warp_256", "warp_512", "render_1024", "render_1024_shot", "hybrid_model",
    "finetune_t1", "finetune_t8", "e2e_warp", "e2e_hybrid", "rss_10s", "rss_60s", "e2e_speak", "rss_speak_60s",
)
# Talking-head clips in the shared data (first found is used), scaled + padded to 640x360.
SHARED_DRIVERS = ("videos/KwaiVGI__LivePortrait/s18.mp4", "videos/OpenTalker__SadTalker/WDA_KatieHill_000.mp4")
SHARED_PORTRAITS = ("portraits/OpenTalker__SadTalker/art_9.png", "portraits/OpenTalker__SadTalker/art_17.png")


@dataclass
class Row:
    key: str
    name: str
    value: float | None  # None: skipped (see note)
    unit: str
    target: str
    reference: float | None = None
    reference_name: str = ""
    cpu_s: float | None = None  # CPU seconds of the measured part, when meaningful
    met: bool | None = None
    note: str = ""


@dataclass
class Context:
    quick: bool
    work: Path
    ffmpeg: str
    repeats: int
    driver_src: str = ""
    portrait_src: str = ""
    drivers: dict = field(default_factory=dict)
    portrait: Path | None = None
    log: bool = True

    def say(self, text: str) -> None:
        if self.log:
            print(f"[bench] {text}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- timing helpers

def _cpu() -> float:
    """CPU seconds of this process and its waited-for children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def best_of(fn, repeats: int) -> tuple[float, float, object]:
    """(best wall s, best CPU s, last result) over `repeats` calls of fn()."""
    wall, cpu, out = math.inf, math.inf, None
    for _ in range(max(1, repeats)):
        t, c = time.perf_counter(), _cpu()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, _cpu() - c)
    return wall, cpu, out


def run_child(cmd: list[str], **kw) -> tuple[float, float, int]:
    """Run a command; (wall s, CPU s incl. its children, peak RSS bytes of the command's own
    process). The peak is the kernel's VmHWM of its address space, polled from /proc: the
    ru_maxrss that wait4 reports would start at THIS process's size (it is inherited by
    fork/exec), hiding the child's own peak."""
    with tempfile.TemporaryFile() as errf:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, **kw)
        peak = 0
        status_file = Path(f"/proc/{proc.pid}/status")
        while True:
            try:
                for line in status_file.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, (peak or usage.ru_maxrss) * 1024


# ----------------------------------------------------------------------------- inputs

def data_dir() -> Path | None:
    path = Path(os.environ.get("TALKANIM_DATA", ROOT.parent / "shared" / "data"))
    return path if path.is_dir() else None


def prepare_inputs(ctx: Context) -> None:
    data = data_dir()
    src = next((data / p for p in SHARED_DRIVERS if data and (data / p).is_file()), None)
    ctx.driver_src = str(src.relative_to(data)) if src else "examples/driver.mp4"
    src = src or ROOT / "examples" / "driver.mp4"
    lengths = {"10s": 10.0, "60s": 60.0} if not ctx.quick else {"10s": 1.0, "60s": 3.0}
    for name, seconds in lengths.items():
        out = ctx.work / f"driver_{name}.mp4"
        vf = "fps=25,scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1"
        subprocess.run([ctx.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-stream_loop", "-1",
                        "-i", str(src), "-t", str(seconds), "-vf", vf, "-c:v", "libx264", "-preset", "veryfast",
                        "-crf", "18", "-c:a", "aac", str(out)], check=True)
        ctx.drivers[name] = out

    import cv2

    side = 1024 if not ctx.quick else 384
    portrait = next((data / p for p in SHARED_PORTRAITS if data and (data / p).is_file()), None)
    ctx.portrait_src = str(portrait.relative_to(data)) if portrait else "examples/portrait.png (upscaled)"
    image = cv2.imread(str(portrait or ROOT / "examples" / "portrait.png"), cv2.IMREAD_COLOR)
    image = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC if image.shape[0] < side else cv2.INTER_AREA)
    ctx.portrait = ctx.work / f"portrait_{side}.png"
    cv2.imwrite(str(ctx.portrait), image)


def decoded_frames(path: Path, limit: int) -> list[np.ndarray]:
    from talkanim.io import iter_frames

    frames = []
    for frame in iter_frames(path):
        frames.append(frame)
        if len(frames) >= limit:
            break
    return frames


# ----------------------------------------------------------------------------- benchmarks

def bench_tracking(ctx: Context, rows: list[Row]) -> None:
    from talkanim.config import TrackConfig
    from talkanim.landmarks import make_detector, track_frames
    from talkanim.landmarks.dlib_backend import box_from_points

    frames = decoded_frames(ctx.drivers["10s"], 250 if not ctx.quick else 25)
    det = make_detector("dlib")
    h, w = frames[0].shape[:2]

    def track():
        marks = {}
        def on_frame(i):
            if i == 0:
                marks["t"], marks["c"] = time.perf_counter(), _cpu()
        tr = track_frames(iter(frames), det, fps=25.0, size=(w, h), config=TrackConfig(), on_frame=on_frame)
        return tr, time.perf_counter() - marks["t"], _cpu() - marks["c"]

    best = (math.inf, math.inf)
    for _ in range(ctx.repeats):
        track_result, wall, cpu = track()
        best = (min(best[0], wall), min(best[1], cpu))
    n = len(frames) - 1
    first = det.detect(frames[0])[0].points

    def predictor_alone():
        pts = first
        for f in frames[1:]:
            pts = det.fit(f, box_from_points(pts))

    p_wall, p_cpu, _ = best_of(predictor_alone, ctx.repeats)
    fps = n / best[0]
    rows.append(Row("track_dlib", "Landmark tracking, dlib, 640x360 (after 1st detection)", fps, "fps", ">= 500",
                    n / p_wall, "dlib predictor alone (fps)", best[1], fps >= 500,
                    f"CPU-bound fps {n / best[1]:.0f}; {int(track_result.valid.sum())}/{len(frames)} frames tracked"))
    bench_mesh_tracking(ctx, rows, frames)

    import torch

    from talkanim.landmarks import fan_backend

    if torch.cuda.is_available() and fan_backend.weights_present():
        fan = make_detector("fan", device="cuda")
        wall, cpu, _ = best_of(lambda: track_frames(iter(frames), fan, fps=25.0, size=(w, h), config=TrackConfig()),
                               ctx.repeats)
        rows.append(Row("track_fan", "Landmark tracking, FAN on CUDA, 640x360", len(frames) / wall, "fps",
                        "(info)", n / p_wall, "dlib predictor alone (fps)", cpu, None, "includes first detection"))
    else:
        why = "no CUDA GPU" if not torch.cuda.is_available() else "FAN weights not downloaded"
        rows.append(Row("track_fan", "Landmark tracking, FAN on CUDA, 640x360", None, "fps", "(info)",
                        note=f"skipped: {why}"))


def bench_mesh_tracking(ctx: Context, rows: list[Row], frames: list) -> None:
    """The mesh backend (the default, "auto"): the whole tracker, and as the reference its
    networks alone run one frame after the other on one thread (the face mesh, then both eyes'
    iris crops), which the tracker beats by running the eyes beside the face mesh."""
    import torch

    from talkanim.config import TrackConfig
    from talkanim.landmarks import make_detector, track_frames
    from talkanim.landmarks.tfgraph import torch_threads

    det = make_detector("mesh", device="cpu")
    h, w = frames[0].shape[:2]
    n = len(frames) - 1

    def track():
        marks = {}

        def on_frame(i):
            if i == 0:
                marks["t"], marks["c"] = time.perf_counter(), _cpu()
        tr = track_frames(iter(frames), det, fps=25.0, size=(w, h), config=TrackConfig(), on_frame=on_frame)
        return tr, time.perf_counter() - marks["t"], _cpu() - marks["c"]

    best = (math.inf, math.inf)
    for _ in range(ctx.repeats):
        track_result, wall, cpu = track()
        best = (min(best[0], wall), min(best[1], cpu))
    face_in = torch.rand(1, 3, 192, 192).contiguous(memory_format=torch.channels_last)
    eyes_in = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)

    def networks_alone():
        with torch.inference_mode(), torch_threads(det.threads):
            for _ in range(n):
                det._mesh_net(face_in)
                det._iris_net(eyes_in)

    net_wall, _, _ = best_of(networks_alone, ctx.repeats)
    fps = n / best[0]
    rows.append(Row("track_mesh", "Landmark tracking, mesh + iris (default), 640x360", fps, "fps", ">= 500",
                    n / net_wall, "its networks alone, frame by frame, 1 thread (fps)", best[1], fps >= 500,
                    f"CPU-bound fps {n / best[1]:.0f}; {int(track_result.valid.sum())}/{len(frames)} frames tracked"))


def _face_and_targets(ctx: Context, count: int):
    """The portrait, its face and `count` driver-retargeted landmark sets (realistic motion)."""
    from talkanim.api import Session, load_driver
    from talkanim.config import AnimateConfig
    from talkanim.io import load_image
    from talkanim.landmarks import detect_face
    from talkanim.motion import retarget

    session = Session(AnimateConfig())
    image = load_image(ctx.portrait)
    face = detect_face(image, session.detector)
    driver = load_driver(ctx.drivers["10s"], session=session)
    motion = retarget(face, driver.track, session.config.motion)
    idx = np.arange(count) % len(motion.points)
    return image, face, motion.points[idx], motion.pupils[idx]


def bench_render(ctx: Context, rows: list[Row], floor_fps: float | None) -> dict:
    import torch
    import torch.nn.functional as F

    from talkanim.config import RenderConfig
    from talkanim.render import FaceRenderer

    n = 64 if not ctx.quick else 8
    image, face, points, pupils = _face_and_targets(ctx, n)
    out = {"image": image, "face": face, "points": points, "pupils": pupils}
    batch = 8

    # reference: torch grid_sample alone on a 256 crop with an identity-like map
    src = torch.rand(batch, 3, 256, 256)
    lin = torch.linspace(-1, 1, 256)
    grid = torch.stack(torch.meshgrid(lin, lin, indexing="xy"), -1)[None].expand(batch, -1, -1, -1) * 0.98
    gs_wall, _, _ = best_of(lambda: [F.grid_sample(src, grid, align_corners=True) for _ in range(n // batch)],
                            ctx.repeats)
    gs_fps = n / gs_wall
    for size in (256, 512):
        r = FaceRenderer(image, face, RenderConfig(size=size))
        r.warp_crop(points[:batch], pupils[:batch])
        wall, cpu, _ = best_of(lambda: [r.warp_crop(points[i:i + batch], pupils[i:i + batch])
                                        for i in range(0, n, batch)], ctx.repeats)
        fps = n / wall
        rows.append(Row(f"warp_{size}", f"Warp-only render (warp_crop) at {size}", fps, "fps",
                        ">= 300" if size == 256 else "(info)", gs_fps, "grid_sample alone at 256 (fps)", cpu,
                        fps >= 300 if size == 256 else None, f"CPU-bound fps {n / cpu:.0f}; batch {batch}"))

    r = FaceRenderer(image, face, RenderConfig())
    out["renderer"] = r

    def full():
        for i in range(0, n, batch):
            for frame in r.render_frames(points[i:i + batch], pupils[i:i + batch]):
                pass

    full()
    wall, cpu, _ = best_of(full, ctx.repeats)
    rows.append(Row("render_1024", f"Full render onto a {image.shape[1]} px portrait (warp + mouth fill + paste)",
                    n / wall, "fps", "(info)", floor_fps, "ffmpeg floor (fps)", cpu, None,
                    f"CPU-bound fps {n / cpu:.0f}"))

    # Worst case for --shot: every frame's face interior from an extra shot (here the portrait
    # mirrored, a face the detector finds like any other picture of the person).
    from talkanim.landmarks import detect_face, make_detector

    mirrored = np.ascontiguousarray(image[:, ::-1])
    with_shot = FaceRenderer(image, face, RenderConfig(), shots=[(mirrored, detect_face(mirrored, make_detector("dlib")))])
    all_shot = np.tile([0.0, 1.0], (batch, 1))

    def full_with_shot():
        for i in range(0, n, batch):
            for frame in with_shot.render_frames(points[i:i + batch], pupils[i:i + batch], shot_weights=all_shot):
                pass

    full_with_shot()
    wall_s, cpu_s, _ = best_of(full_with_shot, ctx.repeats)
    rows.append(Row("render_1024_shot", "Same, every frame's face from an extra --shot",
                    n / wall_s, "fps", "(info)", n / wall, "without the shot (fps)", cpu_s, None,
                    f"CPU-bound fps {n / cpu_s:.0f}"))
    out["warp_fps"] = next(x.value for x in rows if x.key == "warp_256")
    return out


def _tiny_model(ctx: Context):
    import torch

    from talkanim.model import TalkingHeadModel
    from talkanim.model.config import preset

    torch.manual_seed(0)
    model = TalkingHeadModel(preset("tiny", "hybrid"))
    path = ctx.work / "tiny_hybrid.safetensors"
    if not path.exists():
        model.save(path)
    return model, path


def bench_hybrid(ctx: Context, rows: list[Row], rendered: dict) -> None:
    import torch

    from talkanim.neural import make_shot
    from talkanim.config import RenderConfig

    model, _ = _tiny_model(ctx)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    psi = model.generator.project(torch.zeros(1, model.config.embed_dim, device=device))[0].detach()
    refine = model.refiner(psi)
    r = rendered["renderer"]
    points, pupils = rendered["points"], rendered["pupils"]
    n = len(points)
    batch = 8 if device == "cpu" else 64
    t_crop, p_crop = r._targets(points, pupils)
    warped = r.warp_crop(points, pupils)
    tp, pp = torch.from_numpy(t_crop), torch.from_numpy(p_crop)
    if device == "cuda":
        warped, tp, pp = warped.cuda(), tp.cuda(), pp.cuda()
        reps = max(1, batch // n)
        warped, tp, pp = warped.repeat(reps, 1, 1, 1), tp.repeat(reps, 1, 1), pp.repeat(reps, 1, 1)

    def go():
        for i in range(0, len(warped), batch):
            refine(warped[i:i + batch], tp[i:i + batch], pp[i:i + batch])
        if device == "cuda":
            torch.cuda.synchronize()

    go()
    wall, cpu, _ = best_of(go, ctx.repeats)
    fps = len(warped) / wall
    target = 15 if device == "cpu" else 300
    rows.append(Row("hybrid_model", f"Hybrid model (tiny, refine hook at 256) on {device}, batch {batch}", fps, "fps",
                    f">= {target}", rendered["warp_fps"], "warp-only at 256 (fps)", cpu, fps >= target,
                    f"CPU-bound fps {len(warped) / cpu:.0f}" if device == "cpu" else ""))

    # fine-tuning with the default budget at T = 1 and T = 8
    from talkanim.landmarks.types import Face
    from talkanim.train.finetune import CPU_TIME_BUDGET_S, default_finetune_steps, finetune

    image, face = rendered["image"], rendered["face"]
    size = model.config.image_size
    shots = [make_shot(image, face, RenderConfig(), size)]
    # T = 8: the portrait plus 7 retargeted poses of it rendered by the warp (distinct shots)
    for i in range(1, 8):
        j = (i * len(points)) // 8
        frame = r.render(points[j], pupils[j])
        shots.append(make_shot(frame, Face(points=points[j], box=face.box, pupils=pupils[j]), RenderConfig(), size))
    for t in (1, 8):
        sub = shots[:t]
        images = torch.from_numpy(np.stack([s.image for s in sub])).permute(0, 3, 1, 2).float() / 255
        pts = torch.from_numpy(np.stack([s.points for s in sub])).float()
        pup = torch.from_numpy(np.stack([s.pupils for s in sub])).float()
        budget = default_finetune_steps(device, t)
        # The full run measures the default fine-tuning as `animate` runs it (on a CPU: up to
        # `budget` steps, stopped by its time budget); --quick measures 2 steps and projects.
        measured = 2 if ctx.quick else None
        fresh, _ = _tiny_model(ctx)
        marks = []
        t0, c0 = time.perf_counter(), _cpu()
        result = finetune(fresh, images, pts, pup, steps=measured, device=device,
                          progress=lambda *_: marks.append(time.perf_counter()))
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        per_step = (marks[-1] - marks[0]) / (len(marks) - 1) if len(marks) > 1 else wall
        seconds = wall
        if measured is not None:
            seconds = wall + (budget - measured) * per_step
            if device == "cpu":  # the default CPU budget also stops after CPU_TIME_BUDGET_S
                seconds = min(seconds, wall - measured * per_step + CPU_TIME_BUDGET_S)
        cpu_total = cpu * seconds / wall
        target = 60 if device == "cpu" else 10
        how = f"{result.steps} steps measured" if measured is None else f"projected from {measured} measured steps"
        rows.append(Row(f"finetune_t{t}", f"Fine-tuning T={t}, default budget (<= {budget} steps) on {device}", seconds,
                        "s", f"<= {target}" if t == 8 else "(info)", per_step, "s per step", cpu_total,
                        seconds <= target if t == 8 else None,
                        f"{how}; setup (embedder + warped-source pool) {wall - len(marks) * per_step:.1f} s"))


def ffmpeg_floor(ctx: Context, driver: Path, side: int) -> tuple[float, float]:
    """Plain decode (rgb24 pipe, as iter_frames) | 1024^2 libx264 encode with VideoWriter's settings."""
    from talkanim.io import probe_video

    info = probe_video(driver)
    out = ctx.work / "floor.mp4"
    dec = [ctx.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(driver), "-map", "0:V:0",
           "-an", "-vf", f"scale={info.width}:{info.height}", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    enc = [ctx.ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{info.width}x{info.height}", "-framerate", "25", "-i", "pipe:0",
           "-vf", f"scale={side}:{side},scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-colorspace", "bt709",
           "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", "-f", "mp4", str(out)]

    def once():
        t = time.perf_counter()
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p1 = subprocess.Popen(dec, stdout=subprocess.PIPE)
        p2 = subprocess.Popen(enc, stdin=p1.stdout)
        p1.stdout.close()
        if p2.wait() != 0 or p1.wait() != 0:
            raise RuntimeError("ffmpeg floor failed")
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.perf_counter() - t, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)

    runs = [once() for _ in range(ctx.repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def bench_e2e(ctx: Context, rows: list[Row], floor: tuple[float, float]) -> None:
    _, weights = _tiny_model(ctx)
    base = [sys.executable, "-m", "talkanim", "animate", str(ctx.portrait)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    fw, fc = floor
    results = {}
    for mode in ("warp", "hybrid"):
        extra = ["--model", "none"] if mode == "warp" else ["--weights", str(weights), "--finetune-steps", "0"]
        cmd = [*base, str(ctx.drivers["10s"]), "-o", str(ctx.work / f"e2e_{mode}.mp4"), "-q", *extra]
        repeats = ctx.repeats if mode == "warp" else 1
        runs = [run_child(cmd, env=env, cwd=ctx.work) for _ in range(repeats)]
        wall, cpu, rss = min(r[0] for r in runs), min(r[1] for r in runs), min(r[2] for r in runs)
        results[mode] = rss
        ratio = wall / fw
        secs = "10 s" if not ctx.quick else "1 s"
        rows.append(Row(f"e2e_{mode}", f"animate {secs} 640x360 driver -> {ctx.portrait.stem.split('_')[-1]} px, "
                        f"{'warp-only' if mode == 'warp' else 'hybrid tiny (fine-tune 0 steps; see fine-tune rows)'}",
                        wall, "s", "<= 2.0x floor" if mode == "warp" else "(info)", fw, "ffmpeg floor (s)", cpu,
                        ratio <= 2.0 if mode == "warp" else None,
                        f"{ratio:.2f}x floor wall, {cpu / fc:.2f}x floor CPU (floor CPU {fc:.1f} s); "
                        f"incl. Python/torch start-up"))
    rows.append(Row("rss_10s", "Peak RSS of animate, 10 s driver" if not ctx.quick else "Peak RSS, 1 s driver",
                    results["warp"] / 2**20, "MiB", "flat", note="warp-only; the animate process's VmHWM"))
    cmd = [*base, str(ctx.drivers["60s"]), "-o", str(ctx.work / "e2e_60s.mp4"), "-q", "--model", "none"]
    wall, cpu, rss = run_child(cmd, env=env, cwd=ctx.work)
    change = rss / results["warp"] - 1
    rows.append(Row("rss_60s", "Peak RSS of animate, 60 s driver" if not ctx.quick else "Peak RSS, 3 s driver",
                    rss / 2**20, "MiB", "< +10% vs 10 s", results["warp"] / 2**20, "10 s driver (MiB)", cpu,
                    abs(change) < 0.10, f"{change * 100:+.1f}% vs the short driver; animate took {wall:.1f} s"))


def bench_speak(ctx: Context, rows: list[Row]) -> None:
    """`speak` of the 10 s driver's own audio onto the same portrait, against `animate` with that
    driver (the e2e_warp row of this run), and its memory with 60 s of speech."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    speech = {}
    for name in ("10s", "60s"):
        speech[name] = ctx.work / f"speech_{name}.m4a"
        subprocess.run([ctx.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(ctx.drivers[name]),
                        "-vn", "-c:a", "copy", str(speech[name])], check=True)
    base = [sys.executable, "-m", "talkanim", "speak", str(ctx.portrait)]
    runs = [run_child([*base, str(speech["10s"]), "-o", str(ctx.work / "speak_10s.mp4"), "-q", "--model", "none"],
                      env=env, cwd=ctx.work) for _ in range(ctx.repeats)]
    wall, cpu, rss = min(r[0] for r in runs), min(r[1] for r in runs), min(r[2] for r in runs)
    animate = next((r for r in rows if r.key == "e2e_warp"), None)
    ref = animate.value if animate else None
    secs = "10 s" if not ctx.quick else "1 s"
    rows.append(Row("e2e_speak", f"speak {secs} of speech -> {ctx.portrait.stem.split('_')[-1]} px, warp-only, idle motion",
                    wall, "s", "<= animate, same driver length", ref, "animate e2e_warp (s)", cpu,
                    None if ref is None else wall <= ref, f"{wall / ref:.2f}x animate" if ref else ""))
    long_wall, long_cpu, long_rss = run_child([*base, str(speech["60s"]), "-o", str(ctx.work / "speak_60s.mp4"), "-q",
                                               "--model", "none"], env=env, cwd=ctx.work)
    change = long_rss / rss - 1
    rows.append(Row("rss_speak_60s", "Peak RSS of speak, 60 s speech" if not ctx.quick else "Peak RSS of speak, 3 s speech",
                    long_rss / 2**20, "MiB", "< +10% vs 10 s", rss / 2**20, "10 s speech (MiB)", long_cpu,
                    abs(change) < 0.10, f"{change * 100:+.1f}% vs the short speech; speak took {long_wall:.1f} s"))


# ----------------------------------------------------------------------------- report

def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def markdown(rows: list[Row], meta: dict) -> str:
    lines = [
        f"Benchmarks — {meta['machine']}; load average {meta['load_before']} (start) / {meta['load_after']} (end); "
        f"torch threads {meta['torch_threads']}; {'QUICK mode (tiny sizes, not comparable)' if meta['quick'] else 'full run'}"
        f" in {meta['seconds']:.0f} s; driver {meta['driver']}, portrait {meta['portrait']}",
        "",
        "| figure | measured | target | met | reference (same run) | CPU s | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        ref = f"{_fmt(r.reference)} {r.reference_name}" if r.reference is not None else ""
        lines.append(f"| {r.name} | {_fmt(r.value)} {r.unit if r.value is not None else ''} | {r.target} | {met} "
                     f"| {ref} | {_fmt(r.cpu_s)} | {r.note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, finishes in seconds (CI)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per figure (best is kept)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated inputs/outputs in this folder")
    args = ap.parse_args(argv)

    import imageio_ffmpeg
    import torch

    started = time.perf_counter()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="talkanim-bench-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(quick=args.quick, work=work, ffmpeg=imageio_ffmpeg.get_ffmpeg_exe(),
                  repeats=args.repeats or (1 if args.quick else 3))
    rows: list[Row] = []
    try:
        ctx.say("preparing drivers and portrait")
        prepare_inputs(ctx)
        side = 1024 if not ctx.quick else 384
        ctx.say("ffmpeg floor")
        floor = ffmpeg_floor(ctx, ctx.drivers["10s"], side)
        n_frames = 250 if not ctx.quick else 25
        ctx.say("tracking")
        bench_tracking(ctx, rows)
        ctx.say("rendering")
        rendered = bench_render(ctx, rows, n_frames / floor[0])
        ctx.say("hybrid model and fine-tuning")
        bench_hybrid(ctx, rows, rendered)
        ctx.say("end to end and memory")
        bench_e2e(ctx, rows, floor)
        ctx.say("speak")
        bench_speak(ctx, rows)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    order = {k: i for i, k in enumerate(ROW_KEYS)}
    rows.sort(key=lambda r: order.get(r.key, len(order)))
    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPU cores"
                   + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"),
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "torch_threads": torch.get_num_threads(),
        "quick": ctx.quick,
        "seconds": time.perf_counter() - started,
        "driver": ctx.driver_src,
        "portrait": ctx.portrait_src,
        "floor_wall_s": floor[0],
        "floor_cpu_s": floor[1],
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    else:
        print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
