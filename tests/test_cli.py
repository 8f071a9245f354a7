"""The command line end to end, as a user runs it: real subprocesses, real files.

Each error path asserts the one-line message, the exit code, and that no output was written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from talkanim.io import VideoWriter, iter_frames, load_image, probe_video
from tests.content import error_line


def run_cli(*args, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "talkanim", *map(str, args)],
        capture_output=True, cwd=cwd, input=stdin, timeout=300,
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".mp4", ".tmp") or ".tmp" in p.name)


@pytest.fixture(scope="module")
def faceless_image(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "coffee.png"
    import imageio.v3 as iio

    iio.imwrite(path, data.coffee())
    return path


@pytest.fixture(scope="module")
def faceless_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vid") / "blank.mp4"
    with VideoWriter(path, 160, 120, 25) as writer:
        for i in range(20):
            frame = np.zeros((120, 160, 3), np.uint8)
            frame[:, : 8 * i] = 200  # a moving edge, no face
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def short_driver(tmp_path_factory, example_driver) -> Path:
    """The first 1.2 s of the example driver, with its audio."""
    path = tmp_path_factory.mktemp("drv") / "short driver.mp4"
    info = probe_video(example_driver)
    with VideoWriter(path, info.width, info.height, info.fps, audio_from=example_driver, num_frames=30) as writer:
        for i, frame in enumerate(iter_frames(example_driver)):
            if i == 30:
                break
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def example_run(tmp_path_factory, example_portrait, short_driver):
    """The README's first command on the short driver: (process, output path)."""
    folder = tmp_path_factory.mktemp("example")
    out = folder / "out.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", out, "--json")
    return proc, out


def test_example_end_to_end(example_run, example_driver):
    proc, out = example_run
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    info = probe_video(out)
    assert abs(info.num_frames - 30) <= 1
    assert (info.width, info.height) == (512, 512)
    assert info.has_audio and result["audio"]
    assert abs(info.fps - 25) < 0.01
    assert result["landmarks"] == "mesh"  # auto: the offline face mesh, and it says so
    assert "landmarks: mesh" in proc.stderr.decode()
    assert leftovers(out.parent) == ["out.mp4"]
    # what plays is the example clip's first 1.2 s of speech, in sync (measured r 0.9999, 0 ms)
    from tests.content import audio_alignment, decode_audio

    speech = decode_audio(example_driver)[: int(1.2 * 16000)]
    lag, r = audio_alignment(speech, decode_audio(out), 16000)
    assert r > 0.9 and abs(lag) <= 0.04, (lag, r)


def test_default_output_name_and_no_audio(tmp_path, example_portrait, short_driver):
    proc = run_cli("animate", example_portrait, short_driver, "--no-audio", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = tmp_path / "portrait_short driver.mp4"
    assert out.is_file()
    assert not probe_video(out).has_audio
    assert proc.stderr.decode().strip() == ""  # --quiet


def test_landmarks_track_then_animate_from_track(tmp_path, example_portrait, short_driver, example_run):
    """`talkanim landmarks` saves the track `animate` computes for the video (same points), and
    animating from that track renders the same frames as from the video, without sound."""
    from talkanim import api
    from talkanim.landmarks import load_track
    from tests.content import read_frames

    track = tmp_path / "track.npz"
    proc = run_cli("landmarks", short_driver, "-o", track, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    summary = json.loads(proc.stdout)
    assert summary["frames"] == 30 and summary["frames_without_face"] == 0
    saved, tracked = load_track(track), api.load_driver(short_driver).track
    assert (saved.fps, saved.size, saved.backend) == (tracked.fps, tracked.size, tracked.backend) == (25.0, (320, 320), "mesh")  # auto picks the mesh
    assert np.abs(saved.points - tracked.points).max() < 1e-3 and np.abs(saved.pupils - tracked.pupils).max() < 1e-3
    assert saved.points.std(axis=0).mean() > 1.0  # a real track of a moving face, not a constant
    out = tmp_path / "from_track.mp4"
    proc = run_cli("animate", example_portrait, track, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    info = probe_video(out)
    assert abs(info.num_frames - 30) <= 1 and not info.has_audio
    from_video = read_frames(example_run[1]).astype(int)
    assert np.abs(read_frames(out).astype(int) - from_video).mean() < 0.5


# -- error paths -----------------------------------------------------------------------------
def test_missing_source(tmp_path, short_driver):
    proc = run_cli("animate", tmp_path / "nope.jpg", short_driver, "-o", tmp_path / "o.mp4")
    assert proc.returncode == 2
    assert "not found" in error_line(proc) and "nope.jpg" in error_line(proc)
    assert leftovers(tmp_path) == []


def test_debug_shows_where_an_error_came_from(tmp_path, short_driver):
    """`--debug` adds the traceback to the one error line (and keeps the exit code)."""
    proc = run_cli("animate", tmp_path / "nope.jpg", short_driver, "-o", tmp_path / "o.mp4", "--debug")
    assert proc.returncode == 2
    stderr = proc.stderr.decode()
    assert "Traceback (most recent call last)" in stderr and "talkanim/api.py" in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: source not found")


def test_source_not_an_image(tmp_path, short_driver):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a picture\n")
    proc = run_cli("animate", fake, short_driver, "-o", tmp_path / "o.mp4")
    assert proc.returncode == 2
    assert "image" in error_line(proc).lower()
    assert leftovers(tmp_path) == []


def test_driver_not_a_video(tmp_path, example_portrait):
    fake = tmp_path / "random.mp4"
    fake.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    proc = run_cli("animate", example_portrait, fake, "-o", tmp_path / "o.mp4")
    assert proc.returncode == 2
    assert "video" in error_line(proc).lower()
    assert leftovers(tmp_path) == ["random.mp4"]


def test_no_face_in_source(tmp_path, faceless_image, short_driver):
    proc = run_cli("animate", faceless_image, short_driver, "-o", tmp_path / "o.mp4")
    assert proc.returncode == 3
    assert "no face" in error_line(proc).lower()
    assert leftovers(tmp_path) == []


def test_no_face_in_driver(tmp_path, example_portrait, faceless_video):
    proc = run_cli("animate", example_portrait, faceless_video, "-o", tmp_path / "o.mp4")
    assert proc.returncode == 3
    assert "no face" in error_line(proc).lower()
    assert leftovers(tmp_path) == []


def test_several_faces_uses_largest_and_says_so(tmp_path, astronaut, short_driver):
    import cv2
    import imageio.v3 as iio

    small = cv2.resize(astronaut, (320, 320))
    canvas = np.full((512, 512 + 320, 3), 255, np.uint8)
    canvas[:, :512] = astronaut
    canvas[96:416, 512:] = small
    group = tmp_path / "group.png"
    iio.imwrite(group, canvas)
    proc = run_cli("animate", group, short_driver, "-o", tmp_path / "g.mp4", "--no-audio")
    assert proc.returncode == 0, proc.stderr.decode()
    stderr = proc.stderr.decode().lower()
    assert "2 faces" in stderr and "largest" in stderr and "--face-index" in stderr
    proc = run_cli("animate", group, short_driver, "-o", tmp_path / "g2.mp4", "--face-index", "5")
    assert proc.returncode == 2
    assert "face-index" in error_line(proc).lower()
    assert not (tmp_path / "g2.mp4").exists()


def test_unwritable_output(tmp_path, example_portrait, short_driver):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = run_cli("animate", example_portrait, short_driver, "-o", blocker / "out.mp4")
    assert proc.returncode == 4
    assert "output" in error_line(proc).lower()


def test_output_equal_to_input(tmp_path, short_driver, example_portrait):
    proc = run_cli("animate", example_portrait, short_driver, "-o", short_driver)
    assert proc.returncode == 4
    assert "overwrite an input" in error_line(proc)
    assert probe_video(short_driver).num_frames >= 29  # untouched


def test_bad_option_is_a_usage_error(tmp_path, example_portrait, short_driver):
    proc = run_cli("animate", example_portrait, short_driver, "--motion", "sideways")
    assert proc.returncode == 2
    assert "--motion" in error_line(proc)


# -- batch -----------------------------------------------------------------------------------
def test_batch_reports_bad_items_and_goes_on(tmp_path, astronaut, faceless_image, short_driver):
    import imageio.v3 as iio

    folder = tmp_path / "paintings"
    folder.mkdir()
    iio.imwrite(folder / "astro.png", astronaut)
    iio.imwrite(folder / "astro_small.jpg", astronaut[::2, ::2])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (folder / "coffee.png").write_bytes(faceless_image.read_bytes())
    out = tmp_path / "out"
    proc = run_cli("batch", short_driver, folder, "-o", out, "--json", "--no-audio")
    assert proc.returncode == 1, proc.stderr.decode()
    items = {Path(i["source"]).name: i for i in map(json.loads, proc.stdout.decode().splitlines())}
    assert set(items) == {"astro.png", "astro_small.jpg", "broken.jpg", "coffee.png"}
    assert items["astro.png"]["status"] == items["astro_small.jpg"]["status"] == "ok"
    assert items["broken.jpg"]["status"] == items["coffee.png"]["status"] == "failed"
    assert "no face" in items["coffee.png"]["error"].lower()
    assert sorted(p.name for p in out.iterdir()) == ["astro_short driver.mp4", "astro_small_short driver.mp4"]

    # Rerun: nothing new is done; stdin input works too.
    paths = "\n".join(str(p) for p in sorted(folder.iterdir())).encode()
    proc = run_cli("batch", short_driver, "-", "-o", out, "--json", stdin=paths)
    statuses = sorted(json.loads(line)["status"] for line in proc.stdout.decode().splitlines())
    assert statuses == ["failed", "failed", "skipped", "skipped"]
    assert proc.returncode == 1


# -- neural model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory) -> dict[str, Path]:
    """Tiny models: "hybrid" and "paper" freshly initialised (the hybrid one is exactly the
    identity on the warp), and "correcting", a hybrid whose last layer is not zero: it brightens
    the red and blue of whatever it may change (residual tanh(0.8) = 0.66, blend mask ~1)."""
    import torch

    from talkanim.model import TalkingHeadModel
    from talkanim.model.config import preset

    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for mode in ("hybrid", "paper"):
        paths[mode] = folder / f"{mode}.safetensors"
        TalkingHeadModel(preset("tiny", mode), num_videos=2).save(paths[mode])
    torch.manual_seed(0)
    correcting = TalkingHeadModel(preset("tiny", "hybrid"), num_videos=2)
    with torch.no_grad():
        correcting.generator.head.weight.normal_(0.0, 0.01)
        correcting.generator.head.bias.copy_(torch.tensor([0.8, -0.8, 0.8, 6.0]))
    paths["correcting"] = folder / "correcting.safetensors"
    correcting.save(paths["correcting"])
    return paths


def render(folder: Path, name: str, portrait: Path, driver: Path, *options) -> np.ndarray:
    """Frames of `talkanim animate portrait driver OPTIONS`."""
    from tests.content import read_frames

    out = folder / f"{name}.mp4"
    proc = run_cli("animate", portrait, driver, "-o", out, "-q", *options)
    assert proc.returncode == 0, proc.stderr.decode()
    return read_frames(out)


@pytest.fixture(scope="module")
def identity_hybrid(tmp_path_factory, example_portrait, short_driver, untrained_weights) -> np.ndarray:
    return render(tmp_path_factory.mktemp("identity"), "hybrid", example_portrait, short_driver,
                  "--model", "hybrid", "--weights", untrained_weights["hybrid"], "--finetune-steps", "0")


def mouth_and_eyes(points: np.ndarray, shape: tuple[int, int], grow: float = 0.0) -> np.ndarray:
    """(H, W) bool: the mouth's and both eyes' landmark hulls, grown by `grow` x the distance
    between the eyes."""
    import cv2

    from talkanim.landmarks import inter_ocular

    mask = np.zeros(shape, np.uint8)
    for part in (points[48:60], points[36:42], points[42:48]):
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(part).astype(np.int32)), 1)
    if grow:
        radius = int(grow * inter_ocular(points))
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    return mask.astype(bool)


def test_untrained_hybrid_equals_warp_only(example_run, identity_hybrid):
    """The hybrid network starts as the identity on what the renderer gives it: feed-forward
    output == warp-only output, the painted mouth included (the network refines the mouth the
    renderer paints; with the fill switched off under a network, the opened mouth showed the
    portrait's lips stretched into streaks: mouth and eye regions differed by 5.8 levels on
    average, 20.6 on the worst frame)."""
    from tests.content import read_frames, track

    warp_only = read_frames(example_run[1]).astype(np.int16)
    assert np.abs(identity_hybrid.astype(np.int16) - warp_only).mean() < 0.5
    points = track(warp_only.astype(np.uint8))
    mouth = [np.abs(h - w).mean(axis=-1)[mouth_and_eyes(p, w.shape[:2], grow=0.1)].mean()
             for h, w, p in zip(identity_hybrid.astype(np.int16), warp_only, points)]
    print(f"mouth and eye regions, hybrid vs warp: mean {np.mean(mouth):.2f}, worst frame {np.max(mouth):.2f} levels")
    assert max(mouth) < 2.0, mouth


def test_a_correcting_hybrid_changes_the_mouth_and_eyes_and_nothing_else(tmp_path, example_portrait, short_driver,
                                                                        untrained_weights, identity_hybrid):
    """`--weights` with a hybrid whose last layer is not zero: its correction shows in the output,
    inside the mouth and eyes (measured mean change 99 levels against the identity network's
    output), and nowhere else: away from them (farther than 0.6 x the eye distance) the frames
    are the warp's up to the encoder (measured mean 0.28-0.33, 99th percentile 4-5 levels; a
    network repainting the whole crop moves both by tens of levels)."""
    from tests.content import track

    corrected = render(tmp_path, "correcting", example_portrait, short_driver, "--model", "hybrid",
                       "--weights", untrained_weights["correcting"], "--finetune-steps", "0").astype(int)
    points = track(identity_hybrid)
    for k, (frame, base) in enumerate(zip(corrected, identity_hybrid.astype(int))):
        change = np.abs(frame - base).mean(axis=-1)
        inside = mouth_and_eyes(points[k], change.shape)
        far = ~mouth_and_eyes(points[k], change.shape, grow=0.6)
        assert change[inside].mean() > 30, (k, change[inside].mean())
        assert change[far].mean() < 1.0 and np.percentile(change[far], 99) < 10, (k, change[far].mean())


def test_hybrid_person_saved_then_reused_renders_the_same_frames(tmp_path, example_portrait, short_driver,
                                                                 untrained_weights, identity_hybrid):
    """Fine-tuned on two shots and saved with `--save-person`, the person reused with `--person`
    (no fine-tuning) renders the frames the fine-tuned run rendered (measured: identical),
    network correction included (mouth and eyes 92 levels from the identity network's)."""
    from tests.content import track

    person = tmp_path / "person.safetensors"
    out = tmp_path / "hybrid.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", out, "--model", "hybrid",
                   "--weights", untrained_weights["correcting"], "--finetune-steps", "2", "--shot", example_portrait,
                   "--save-person", person, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["model"] == "hybrid" and person.is_file()
    assert "fine-tuned 2 steps on 2 shot(s)" in proc.stderr.decode()
    from tests.content import read_frames

    tuned = read_frames(out).astype(int)
    reused = tmp_path / "reused.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", reused, "--model", "hybrid",
                   "--weights", untrained_weights["correcting"], "--person", person, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "person loaded" in proc.stderr.decode()
    again = read_frames(reused).astype(int)
    assert again.shape == tuned.shape and np.abs(again - tuned).mean() < 0.5
    points = track(identity_hybrid)
    inside = np.stack([mouth_and_eyes(p, tuned.shape[1:3]) for p in points])
    assert np.abs(again - identity_hybrid.astype(int)).mean(axis=-1)[inside].mean() > 20


def test_paper_mode_paints_the_face_crop(tmp_path, example_portrait, short_driver, untrained_weights, example_run):
    """`--model paper` paints the face from the landmark sketch: with an untrained model the face
    is noise, far from the warp's (measured mean difference 52 levels around the nose), while
    the picture outside the face crop stays the portrait's (1.2 levels: the encoder's spread)."""
    from tests.content import read_frames

    out = tmp_path / "paper.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", out, "--model", "paper",
                   "--weights", untrained_weights["paper"], "--finetune-steps", "1", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["model"] == "paper"
    painted, warp_only = read_frames(out).astype(int), read_frames(example_run[1]).astype(int)
    nose = (slice(110, 150), slice(205, 245))  # the astronaut's nose, 512 px portrait
    assert np.abs(painted[:, nose[0], nose[1]] - warp_only[:, nose[0], nose[1]]).mean() > 20
    corner = (slice(400, 512), slice(0, 100))  # her suit, far outside the face crop
    assert np.abs(painted[:, corner[0], corner[1]] - warp_only[:, corner[0], corner[1]]).mean() < 2.5


def test_weights_errors(tmp_path, example_portrait, short_driver, untrained_weights):
    proc = run_cli("animate", example_portrait, short_driver, "-o", tmp_path / "a.mp4", "--model", "hybrid", "--weights", tmp_path / "nope.safetensors")
    assert proc.returncode == 5 and "weights not found" in error_line(proc)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(untrained_weights["hybrid"].read_bytes()[:5000])
    proc = run_cli("animate", example_portrait, short_driver, "-o", tmp_path / "b.mp4", "--model", "hybrid", "--weights", truncated)
    assert proc.returncode == 5, proc.stderr.decode()
    error_line(proc)
    proc = run_cli("animate", example_portrait, short_driver, "-o", tmp_path / "c.mp4", "--model", "paper",
                   "--weights", untrained_weights["hybrid"])
    assert proc.returncode == 5 and "not paper" in error_line(proc)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("size", [(504, 512), (255, 201), (333, 517)])
def test_preview_works_at_any_portrait_size(tmp_path, astronaut, short_driver, size):
    """--preview on portraits whose proportions differ from the driver's (a 504x512 portrait once
    failed: the driver's panel was sized from the portrait instead of the driver)."""
    import cv2

    from talkanim.api import animate
    from talkanim.config import AnimateConfig, RenderConfig
    from talkanim.io import iter_frames

    width, height = size
    scale = max(width, height) / 512
    picture = cv2.resize(astronaut, (round(512 * scale), round(512 * scale)), interpolation=cv2.INTER_AREA)
    top, left = (picture.shape[0] - height) // 2, (picture.shape[1] - width) // 2
    picture = np.ascontiguousarray(picture[top:top + height, left:left + width])
    assert picture.shape[:2] == (height, width)
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), picture[..., ::-1])
    out = tmp_path / "preview.mp4"
    result = animate(portrait, short_driver, out, config=AnimateConfig(render=RenderConfig(preview=True)))
    driver = probe_video(short_driver)
    panel_height = 256
    expected = 2 * round(width * panel_height / height) + round(driver.width * panel_height / driver.height)
    assert result.width == expected + expected % 2 and result.height == panel_height
    first = next(iter(iter_frames(out)))
    # the left panel is the portrait
    shown = first[:, :round(width * panel_height / height)].astype(float)
    expected_panel = cv2.resize(picture, (shown.shape[1], panel_height), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(shown - expected_panel).mean() < 6.0
