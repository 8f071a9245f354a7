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


def run_cli(*args, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "talkanim", *map(str, args)],
        capture_output=True, cwd=cwd, input=stdin, timeout=300,
    )


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The error the user sees: exactly one line on stderr starting with 'error:'."""
    lines = [line for line in proc.stderr.decode().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
    return errors[0]


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


def test_example_end_to_end(tmp_path, example_portrait, short_driver):
    out = tmp_path / "out.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    info = probe_video(out)
    assert abs(info.num_frames - 30) <= 1
    assert (info.width, info.height) == (512, 512)
    assert info.has_audio and result["audio"]
    assert abs(info.fps - 25) < 0.01
    assert result["landmarks"] == "mesh"  # auto: the offline face mesh, and it says so
    assert "landmarks: mesh" in proc.stderr.decode()
    assert leftovers(tmp_path) == ["out.mp4"]


def test_default_output_name_and_no_audio(tmp_path, example_portrait, short_driver):
    proc = run_cli("animate", example_portrait, short_driver, "--no-audio", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = tmp_path / "portrait_short driver.mp4"
    assert out.is_file()
    assert not probe_video(out).has_audio
    assert proc.stderr.decode().strip() == ""  # --quiet


def test_stdout_output_is_a_playable_mp4(tmp_path, example_portrait, short_driver):
    proc = run_cli("animate", example_portrait, short_driver, "-o", "-", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    path = tmp_path / "piped.mp4"
    path.write_bytes(proc.stdout)
    assert abs(probe_video(path).num_frames - 30) <= 1 or sum(1 for _ in iter_frames(path)) >= 29


def test_landmarks_track_then_animate_from_track(tmp_path, example_portrait, short_driver):
    track = tmp_path / "track.npz"
    proc = run_cli("landmarks", short_driver, "-o", track, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    summary = json.loads(proc.stdout)
    assert summary["frames"] == 30 and summary["frames_without_face"] == 0
    out = tmp_path / "from_track.mp4"
    proc = run_cli("animate", example_portrait, track, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    info = probe_video(out)
    assert abs(info.num_frames - 30) <= 1 and not info.has_audio


def test_preview_is_three_panels(tmp_path, example_portrait, short_driver):
    out = tmp_path / "preview.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", out, "--preview", "-q")
    assert proc.returncode == 0, proc.stderr.decode()
    info = probe_video(out)
    assert info.width > 2.5 * info.height


# -- error paths -----------------------------------------------------------------------------
def test_missing_source(tmp_path, short_driver):
    proc = run_cli("animate", tmp_path / "nope.jpg", short_driver, "-o", tmp_path / "o.mp4")
    assert proc.returncode == 2
    assert "not found" in error_line(proc) and "nope.jpg" in error_line(proc)
    assert leftovers(tmp_path) == []


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
    """Freshly initialised tiny models: the hybrid one is exactly the identity on the warp."""
    from talkanim.model import TalkingHeadModel
    from talkanim.model.config import preset

    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for mode in ("hybrid", "paper"):
        paths[mode] = folder / f"{mode}.safetensors"
        TalkingHeadModel(preset("tiny", mode), num_videos=2).save(paths[mode])
    return paths


def test_hybrid_with_shots_saves_and_reuses_a_person(tmp_path, example_portrait, short_driver, untrained_weights):
    from talkanim.io import iter_frames

    person = tmp_path / "person.safetensors"
    out = tmp_path / "hybrid.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", out, "--model", "hybrid", "--weights", untrained_weights["hybrid"],
                   "--finetune-steps", "2", "--shot", example_portrait, "--save-person", person, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["model"] == "hybrid" and person.is_file()
    assert "fine-tuned 2 steps on 2 shot(s)" in proc.stderr.decode()

    reused = tmp_path / "reused.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", reused, "--model", "hybrid", "--weights", untrained_weights["hybrid"],
                   "--person", person, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "person loaded" in proc.stderr.decode()
    assert abs(probe_video(reused).num_frames - 30) <= 1


def test_untrained_hybrid_equals_warp_only(tmp_path, example_portrait, short_driver, untrained_weights):
    """The hybrid network starts as the identity on the warp: feed-forward output == warp."""
    outs = {}
    for name, extra in (("none", ["--model", "none"]),
                        ("hybrid", ["--model", "hybrid", "--weights", untrained_weights["hybrid"], "--finetune-steps", "0"])):
        outs[name] = tmp_path / f"{name}.mp4"
        proc = run_cli("animate", example_portrait, short_driver, "-o", outs[name], "-q", *extra)
        assert proc.returncode == 0, proc.stderr.decode()
    a = np.stack(list(iter_frames(outs["none"]))).astype(np.int16)
    b = np.stack(list(iter_frames(outs["hybrid"]))).astype(np.int16)
    assert np.abs(a - b).mean() < 0.5


def test_paper_mode_runs(tmp_path, example_portrait, short_driver, untrained_weights):
    out = tmp_path / "paper.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", out, "--model", "paper",
                   "--weights", untrained_weights["paper"], "--finetune-steps", "1", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["model"] == "paper"


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


def test_output_frame_rate(tmp_path, example_portrait, short_driver):
    out = tmp_path / "slow.mp4"
    proc = run_cli("animate", example_portrait, short_driver, "-o", out, "--fps", "12.5", "--model", "none", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    info = probe_video(out)
    assert abs(info.fps - 12.5) < 0.01 and abs(info.num_frames - 15) <= 1


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
