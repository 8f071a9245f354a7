"""What `talkanim animate` hands a user, checked on the content: the sound it carries, which
driver frame each output frame follows, the panels of a preview, the face's pose and shape.

Two drivers the tests make themselves (no shared data needed):
  - the *marked* driver: the astronaut, her head gliding diagonally at a constant speed (so the
    head's position in an output says which driver frame it follows) with a red square whose
    position encodes the frame index (so a driver frame shown in a preview says its index), and
    the first 2 s of the example clip's speech as its sound;
  - the *talking* driver: the first 40 frames of the example clip (real speech, a turning head).
The portrait is the shipped example (the astronaut, 512 x 512). Each CLI run is made once per
module and checked by several tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.content import (
    EXAMPLES,
    audio_alignment,
    decode_audio,
    first_timestamp,
    head_pose,
    marked_frames,
    marker_index,
    nearest_frames,
    ok,
    read_frames,
    rms,
    run_cli,
    sharpness,
    track,
    translate,
    write_video,
)

PORTRAIT = EXAMPLES / "portrait.png"
FPS = 25
MARKED_FRAMES = 50
RATE = 16000  # audio is compared at 16 kHz mono


@dataclass
class Run:
    """One `talkanim animate` run: its output, decoded frames and --json line (if asked)."""

    path: Path
    frames: np.ndarray
    result: dict | None
    stderr: str


def animate(folder: Path, name: str, driver: Path, *options) -> Run:
    out = folder / f"{name}.mp4"
    proc = ok(run_cli("animate", PORTRAIT, driver, "-o", out, *options))
    result = json.loads(proc.stdout) if "--json" in options else None
    return Run(out, read_frames(out), result, proc.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("content")


@pytest.fixture(scope="module")
def portrait_face():
    from talkanim.io import load_image
    from talkanim.landmarks import detect_face, make_detector

    return detect_face(load_image(PORTRAIT), make_detector("dlib"))


# ------------------------------------------------------------------ the marked driver
@pytest.fixture(scope="module")
def marked(folder, astronaut) -> Path:
    frames, _ = marked_frames(astronaut, MARKED_FRAMES)
    return write_video(folder / "marked.mp4", frames, FPS, audio_from=EXAMPLES / "driver.mp4")


@pytest.fixture(scope="module")
def marked_targets(marked, portrait_face) -> np.ndarray:
    """Where the portrait's landmarks should be for each driver frame (the public motion API on
    the driver as `animate` tracks it)."""
    from talkanim import api
    from talkanim.motion import retarget

    return retarget(portrait_face, api.load_driver(marked).track).points


@pytest.fixture(scope="module")
def plain(folder, marked) -> Run:
    """`talkanim animate portrait marked.mp4 --json`: the default output."""
    return animate(folder, "plain", marked, "--json")


@pytest.fixture(scope="module")
def at_10_fps(folder, marked) -> Run:
    return animate(folder, "fps10", marked, "--fps", "10", "-q")


def test_output_carries_the_drivers_sound_in_sync(plain, marked):
    """The output's audio is the driver's waveform, not just an audio stream: the decoded
    waveforms correlate at r > 0.9 (measured 0.9999 after the AAC re-encode) at an offset
    within one frame (measured 0 ms); silence or another sound would score ~0."""
    driver_audio, output_audio = decode_audio(marked, RATE), decode_audio(plain.path, RATE)
    assert rms(driver_audio) > 0.01  # the driver really speaks (measured 0.12)
    lag, r = audio_alignment(driver_audio, output_audio, RATE)
    assert r > 0.9 and abs(lag) <= 1 / FPS, (lag, r)
    assert abs(rms(output_audio) / rms(driver_audio) - 1) < 0.1  # same loudness (measured 0.999)
    # the sound lasts as long as the pictures (2 s), no longer
    assert abs(len(output_audio) / RATE - MARKED_FRAMES / FPS) <= 1 / FPS


def test_json_line_describes_the_written_file(plain, marked):
    result = plain.result
    assert Path(result["output"]).resolve() == plain.path.resolve()
    assert Path(result["source"]) == PORTRAIT.resolve() and Path(result["driver"]) == marked.resolve()
    assert result["frames"] == len(plain.frames) == MARKED_FRAMES
    assert (result["height"], result["width"]) == plain.frames.shape[1:3] == (512, 512)
    assert result["fps"] == FPS and result["audio"] is True and len(decode_audio(plain.path)) > 0
    assert result["landmarks"] == "mesh" and result["model"] == "none"
    assert result["driver_frames_without_face"] == 0 and result["status"] == "ok"


def test_each_output_frame_follows_its_driver_frame(plain, marked_targets):
    """The landmarks re-detected on output frame k are those the driver's frame k asks for:
    mean error under 2 px (measured 0.7-0.9 px; the head travels 24 px over the clip, 0.5 px a
    frame), and the nearest target is frame k's own, give or take one frame."""
    found = track(plain.frames)
    error = np.linalg.norm(found - marked_targets, axis=-1).mean(axis=-1)
    assert error.max() < 2.0, error.round(2)
    decoded = nearest_frames(found, marked_targets)
    assert np.abs(decoded - np.arange(MARKED_FRAMES)).max() <= 1, decoded


def test_fps_resamples_the_driver_in_time(at_10_fps, marked_targets):
    """`--fps 10` on a 25 fps driver: 20 frames over the same 2 s, output frame k showing driver
    frame round(2.5 k) (decoded from the head's position: within one driver frame)."""
    assert len(at_10_fps.frames) == MARKED_FRAMES * 10 // FPS
    decoded = nearest_frames(track(at_10_fps.frames, fps=10), marked_targets)
    expected = np.round(np.arange(len(decoded)) * FPS / 10).astype(int)
    assert np.abs(decoded - expected).max() <= 1, (decoded, expected)


def test_preview_shows_the_source_the_driver_frame_and_the_result(folder, marked, at_10_fps):
    """`--preview --fps 10`: three 256 px panels. The left one is the portrait, the middle one
    the driver frame output frame k follows (its marker says which: exactly round(2.5 k)), the
    right one the frame `--fps 10` renders without --preview."""
    preview = animate(folder, "preview", marked, "--preview", "--fps", "10", "-q")
    assert preview.frames.shape == (len(at_10_fps.frames), 256, 3 * 256, 3)
    from talkanim.io import load_image

    def small(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).astype(int)

    driver = read_frames(marked)
    portrait = small(load_image(PORTRAIT))
    for k, frame in enumerate(preview.frames.astype(int)):
        source, shown, result = frame[:, :256], frame[:, 256:512], frame[:, 512:]
        index = round(k * FPS / 10)
        assert marker_index(shown.astype(np.uint8), scale=256 / 320) == index
        # each panel is its picture, up to the encoder (measured mean differences 2.3-2.8 levels)
        assert np.abs(source - portrait).mean() < 4
        assert np.abs(shown - small(driver[index])).mean() < 4
        assert np.abs(result - small(at_10_fps.frames[k])).mean() < 4
    # The right panel moves with the face: near the end of the clip it is much closer to the
    # result than to the still portrait around the face (measured below).
    face = (slice(30, 100), slice(80, 150))  # the face in a 256 px panel
    last = preview.frames[-1].astype(int)[:, 512:]
    to_result = np.abs(last[face] - small(at_10_fps.frames[-1])[face]).mean()
    to_portrait = np.abs(last[face] - portrait[face]).mean()
    assert to_result < 0.5 * to_portrait, (to_result, to_portrait)


def test_stdout_stream_holds_the_same_video_and_sound(plain, marked):
    """`-o -` writes a fragmented MP4 with the frames the file output has, and the driver's
    sound in sync with them. (Its streams start late: measured video at 80 ms, the speech at
    64 ms, since a fragmented MP4 has no edit list; what counts is the 16 ms between them.)"""
    proc = ok(run_cli("animate", PORTRAIT, marked, "-o", "-", "-q"))
    piped = plain.path.with_name("piped.mp4")
    piped.write_bytes(proc.stdout)
    frames = read_frames(piped)
    assert frames.shape == plain.frames.shape
    assert np.abs(frames.astype(int) - plain.frames).mean() < 0.5  # the same encoder on the same frames
    lag, r = audio_alignment(decode_audio(marked, RATE), decode_audio(piped, RATE), RATE)
    assert r > 0.9 and abs(lag - first_timestamp(piped, "v")) <= 1 / FPS, (lag, r)


def test_device_cpu_renders_what_the_default_device_renders(plain, marked):
    """`--device cpu` runs and gives the same video as the default (auto: the CPU here; on a
    CUDA machine the GPU, equal up to float rounding). `--device cuda` where there is no CUDA
    fails clearly (exit 6)."""
    import torch

    cpu = animate(plain.path.parent, "cpu", marked, "--device", "cpu", "-q")
    assert np.abs(cpu.frames.astype(int) - plain.frames).mean() < 0.5
    if not torch.cuda.is_available():
        proc = run_cli("animate", PORTRAIT, marked, "-o", plain.path.with_name("cuda.mp4"), "--device", "cuda")
        assert proc.returncode == 6 and "no CUDA GPU" in proc.stderr.decode()
        assert not plain.path.with_name("cuda.mp4").exists()


# ------------------------------------------------------------------ the talking driver
@pytest.fixture(scope="module")
def talking(folder) -> Path:
    """The first 40 frames (1.6 s) of the example clip, with its sound: speech and a turning head."""
    return write_video(folder / "talking.mp4", read_frames(EXAMPLES / "driver.mp4")[:40], FPS,
                       audio_from=EXAMPLES / "driver.mp4")


@pytest.fixture(scope="module")
def talking_plain(folder, talking) -> Run:
    return animate(folder, "talking_plain", talking, "-q")


@pytest.fixture(scope="module")
def talking_plain_points(talking_plain) -> np.ndarray:
    return track(talking_plain.frames)


def test_no_head_motion_keeps_the_pose_and_moves_the_mouth(folder, talking, talking_plain_points, portrait_face):
    """`--no-head-motion`: the head's pose measured on the output (rigid points: jaw ends,
    nose, eye corners) stays the portrait's while the mouth still talks. Measured: position
    spread 0.4 / 0.3 px and tilt spread 0.8 deg (re-detection noise), against 3.5 / 7.2 px and
    5.8 deg with head motion; mouth-opening spread 0.079 vs 0.077."""
    from talkanim.landmarks import mouth_opening

    still = track(animate(folder, "no_head", talking, "--no-head-motion", "-q").frames)
    pose_still = head_pose(still, portrait_face.points)
    pose_moving = head_pose(talking_plain_points, portrait_face.points)
    assert (pose_moving[:, :2].std(axis=0) > 2.0).all() and pose_moving[:, 2].std() > 3.0  # the driver turns
    assert (pose_still[:, :2].std(axis=0) < 1.0).all() and np.abs(pose_still[:, :2]).max() < 3.0
    assert pose_still[:, 2].std() < 1.5
    assert mouth_opening(still).std() > 0.6 * mouth_opening(talking_plain_points).std()


def test_driver_ref_frame_renders_the_portrait_itself(folder, talking, talking_plain):
    """`--driver-ref 28` (a frame where the driver's mouth is wide open): motion is measured
    from that frame, so output frame 28 is the portrait as it is. Measured on the face: mean
    difference 4.1 levels there (the encoder's own loss) against 31.7 with the default
    reference; it is the output frame nearest the portrait."""
    from talkanim.io import load_image
    from talkanim.render import face_crop_box
    from talkanim.landmarks import detect_face, make_detector

    portrait = load_image(PORTRAIT).astype(int)
    box = face_crop_box(detect_face(portrait.astype(np.uint8), make_detector("dlib")).points, 1.6)
    face = (slice(int(box.y0), int(box.y0 + box.side)), slice(int(box.x0), int(box.x0 + box.side)))

    def difference(frames: np.ndarray) -> np.ndarray:
        return np.array([np.abs(f.astype(int)[face] - portrait[face]).mean() for f in frames])

    from_28 = difference(animate(folder, "ref28", talking, "--driver-ref", "28", "-q").frames)
    default = difference(talking_plain.frames)
    assert from_28[28] < 7 and from_28.argmin() == 28, from_28.round(1)
    assert default[28] > 15, default.round(1)


def test_size_keeps_the_portraits_own_pixels(folder, talking, talking_plain):
    """`--size 64` computes the flow on a 64 px crop, but the pixels still come from the
    full-resolution portrait: the face keeps its fine detail (measured Laplacian variance 511
    at 64 vs 522 at the default 256; 65 when the pixels were made to go through the 64 px crop)
    while the flow, hence the frames, differ (mean difference on the face 3.8 levels)."""
    from talkanim.render import face_crop_box
    from talkanim.landmarks import detect_face, make_detector

    small = animate(folder, "size64", talking, "--size", "64", "-q")
    assert small.frames.shape == talking_plain.frames.shape
    box = face_crop_box(detect_face(talking_plain.frames[0], make_detector("dlib")).points, 1.6)
    face = (slice(int(box.y0), int(box.y0 + box.side)), slice(int(box.x0), int(box.x0 + box.side)))
    detail = np.mean([sharpness(f[face]) for f in small.frames])
    reference = np.mean([sharpness(f[face]) for f in talking_plain.frames])
    assert detail > 0.8 * reference, (detail, reference)
    assert np.abs(small.frames[:, face[0], face[1]].astype(int) - talking_plain.frames[:, face[0], face[1]]).mean() > 1


def face_shape(points: np.ndarray) -> np.ndarray:
    """Eye distance over face width at the temples: the face's own proportion (pose-free)."""
    points = np.asarray(points, np.float64)
    width = np.linalg.norm(points[..., 16, :] - points[..., 0, :], axis=-1)
    eyes = np.linalg.norm(points[..., 42:48, :].mean(-2) - points[..., 36:42, :].mean(-2), axis=-1)
    return eyes / width


def test_absolute_motion_takes_the_drivers_face_shape(folder, talking, talking_plain):
    """`--motion absolute` pastes the driver's landmarks as they are, so the output's face takes
    the driver's proportions; the default keeps the portrait's. Everything is read with the face
    mesh that drives the pipeline (dlib places the temples differently on the two faces: it
    reads the portrait 0.018 wider-eyed than the mesh, the driver 0.003). Measured eye distance
    / face width: portrait 0.448, driver 0.426; output 0.431 absolute, 0.472 relative. The mesh
    reads the rendered, turning head a little wider-eyed than the landmarks it was drawn from
    (0.443 on average for the relative output), so the two outputs are compared with each other:
    the relative one lies 0.041 to the portrait's side of the absolute one, the faces 0.022
    apart."""
    from talkanim.io import load_image
    from talkanim.landmarks import detect_face, make_detector

    mesh = make_detector("mesh")
    driver_shape = face_shape(track(read_frames(talking), detector=mesh)).mean()
    portrait_shape = face_shape(detect_face(load_image(PORTRAIT), mesh).points)
    absolute = face_shape(track(animate(folder, "absolute", talking, "--motion", "absolute", "-q").frames,
                                detector=mesh)).mean()
    relative = face_shape(track(talking_plain.frames, detector=mesh)).mean()
    print(f"portrait {portrait_shape:.3f}, driver {driver_shape:.3f}; absolute {absolute:.3f}, relative {relative:.3f}")
    assert abs(absolute - driver_shape) < 0.5 * abs(absolute - portrait_shape), (absolute, driver_shape, portrait_shape)
    assert relative - absolute > 0.5 * (portrait_shape - driver_shape), (relative, absolute, driver_shape, portrait_shape)


def test_landmarks_option_picks_the_backend(folder, talking):
    """`--landmarks dlib` is the backend the output reports (and used without a word about FAN)."""
    run = animate(folder, "dlib", talking, "--landmarks", "dlib", "--json", "--no-audio")
    assert run.result["landmarks"] == "dlib" and "FAN" not in run.stderr


def test_landmarks_fan_without_its_weights_offline_fails_at_once(folder, talking):
    """`--landmarks fan` with no FAN weights and no internet: exit 6 within seconds, pointing
    to dlib, and no output."""
    from talkanim.landmarks import fan_backend

    if fan_backend.weights_present() or fan_backend._online(fan_backend._weights_url()):
        pytest.skip("FAN weights are present or downloadable here: --landmarks fan runs")
    out = folder / "fan.mp4"
    proc = run_cli("animate", PORTRAIT, talking, "-o", out, "--landmarks", "fan", timeout=60)
    assert proc.returncode == 6 and "--landmarks dlib" in proc.stderr.decode(), proc.stderr.decode()
    assert not out.exists()


def test_smoothing_steadies_a_shaking_camera(folder, talking):
    """The driver filmed by a shaking camera (each frame moved by up to 2 px at random): with
    the default One-Euro smoothing the output's face shakes less than when the driver's
    landmarks are used raw, and the mouth still moves as much. Measured frame-to-frame
    acceleration of the output's landmarks (dlib): 1.55 px smoothed vs 2.98 raw."""
    from talkanim import api
    from talkanim.config import AnimateConfig, NeuralConfig, TrackConfig
    from talkanim.landmarks import mouth_opening

    shake = np.random.default_rng(0).uniform(-2, 2, (40, 2))
    shaky = write_video(folder / "shaky.mp4", [translate(f, *s) for f, s in zip(read_frames(talking), shake)], FPS)

    def output_points(smooth: bool) -> np.ndarray:
        out = folder / f"shaky_smooth_{smooth}.mp4"
        config = AnimateConfig(track=TrackConfig(smooth=smooth), neural=NeuralConfig(model="none"))
        api.animate(PORTRAIT, shaky, out, config=config)
        return track(read_frames(out))

    def shake_of(points: np.ndarray) -> float:
        return float(np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1).mean())

    smoothed, raw = output_points(True), output_points(False)
    print(f"shake {shake_of(smoothed):.2f} vs {shake_of(raw):.2f} px; mouth spread {mouth_opening(smoothed).std():.3f} vs {mouth_opening(raw).std():.3f}")
    assert shake_of(smoothed) < 0.7 * shake_of(raw), (shake_of(smoothed), shake_of(raw))
    # the mouth still talks: its spread is kept to within 0.7 (measured 0.050 smoothed, 0.061
    # raw, the raw one widened by the shake's jitter in the face mesh's mouth)
    assert mouth_opening(smoothed).std() > 0.7 * mouth_opening(raw).std()
