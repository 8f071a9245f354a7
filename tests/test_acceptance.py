"""Acceptance of the core pipeline on real clips and portraits from ../shared/data.

Skipped with a reason when the shared data is absent. Numbers are printed (pytest -s) so a
session can report what it measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from talkanim import api
from talkanim.config import AnimateConfig, MotionConfig, NeuralConfig
from talkanim.io import iter_frames, load_image, probe_video
from talkanim.landmarks import detect_face, make_detector, track_frames
from talkanim.landmarks.measures import mouth_opening
from talkanim.config import TrackConfig

pytestmark = pytest.mark.shared_data

CLIPS = [  # short, with audio, different people and sizes
    "videos/OpenTalker__video-retalking/face_3.mp4",
    "videos/Zejun-Yang__AniPortrait/pose_ref_video.mp4",
    "videos/KwaiVGI__LivePortrait/d12.mp4",
]
PORTRAITS = [
    "portraits/KwaiVGI__LivePortrait/s9.jpg",  # Mona Lisa, 720x1280
    "portraits/OpenTalker__SadTalker/art_1.png",  # digital art, 512x512
]
MAX_FRAMES = 90  # keep CI fast: the first ~3 s of each clip


WARP_ONLY = NeuralConfig(model="none")  # the core pipeline, before any network


@pytest.fixture(scope="module")
def session() -> api.Session:
    return api.Session(AnimateConfig(neural=WARP_ONLY))


@pytest.fixture(scope="module")
def drivers(data_dir, session, tmp_path_factory) -> dict[str, api.Driver]:
    """The first MAX_FRAMES frames of each clip (with audio), tracked once."""
    from talkanim.io import VideoWriter

    folder = tmp_path_factory.mktemp("drivers")
    out = {}
    for clip in CLIPS:
        src = data_dir / clip
        info = probe_video(src)
        cut = folder / f"{src.stem}.mp4"
        with VideoWriter(cut, info.width, info.height, info.fps, audio_from=src,
                         num_frames=min(MAX_FRAMES, info.num_frames)) as writer:
            for i, frame in enumerate(iter_frames(src, info=info)):
                if i == MAX_FRAMES:
                    break
                writer.write(frame)
        out[clip] = api.load_driver(cut, session=session)
    return out


def track_video(path: Path, session: api.Session):
    info = probe_video(path)
    return track_frames(iter_frames(path, info=info), session.detector, fps=info.fps,
                        size=(info.width, info.height), config=TrackConfig(smooth=False))


@pytest.fixture(scope="module")
def rendered(data_dir, drivers, session, tmp_path_factory) -> dict[tuple[str, str], api.AnimateResult]:
    folder = tmp_path_factory.mktemp("rendered")
    results = {}
    for clip, driver in drivers.items():
        for portrait in PORTRAITS:
            out = folder / f"{Path(portrait).stem}_{Path(clip).stem}.mp4"
            results[clip, portrait] = api.animate(data_dir / portrait, driver, out, session=session)
            r = results[clip, portrait]
            print(f"{Path(portrait).name} x {Path(clip).name}: {r.frames} frames in {r.seconds:.1f} s")
    return results


def test_outputs_match_driver_and_portrait(data_dir, drivers, rendered):
    for (clip, portrait), result in rendered.items():
        driver = drivers[clip]
        info = probe_video(result.output)
        height, width = load_image(data_dir / portrait).shape[:2]
        assert abs(info.num_frames - driver.track.num_frames) <= 1
        assert abs(info.fps - driver.track.fps) < 0.01
        assert (info.width, info.height) == (width + width % 2, height + height % 2)
        assert info.has_audio == driver.has_audio == True  # noqa: E712  every clip here has audio


def test_mouth_follows_driver(drivers, rendered, session):
    """The mouth opening measured on the output correlates with the driver's (r >= 0.6)."""
    for (clip, portrait), result in rendered.items():
        driven = np.array([mouth_opening(p) for p in drivers[clip].track.points])
        measured = np.array([mouth_opening(p) for p in track_video(Path(result.output), session).points])
        n = min(len(driven), len(measured))
        r = np.corrcoef(driven[:n], measured[:n])[0, 1]
        print(f"mouth r {Path(portrait).name} x {Path(clip).name}: {r:.3f} (driver std {driven.std():.3f})")
        assert r >= 0.6, (clip, portrait, r)


def face_shape(points: np.ndarray) -> np.ndarray:
    """Pose-free descriptors of a face's shape that speech does not change (the chin does):
    eye distance and nose length relative to the width of the face at the temples."""
    points = np.asarray(points, np.float64)
    jaw = np.linalg.norm(points[..., 16, :] - points[..., 0, :], axis=-1)
    inter_ocular = np.linalg.norm(points[..., 42:48, :].mean(-2) - points[..., 36:42, :].mean(-2), axis=-1)
    nose = np.linalg.norm(points[..., 33, :] - points[..., 27, :], axis=-1)
    return np.stack([inter_ocular / jaw, nose / jaw], axis=-1)


def test_identity_kept_relative_but_not_absolute(data_dir, drivers, session, tmp_path):
    """Cross-person driving: relative motion keeps the portrait's face shape within 5%;
    absolute motion drifts toward the driver's."""
    portrait = data_dir / "portraits/OpenTalker__SadTalker/art_1.png"
    clip = "videos/OpenTalker__video-retalking/face_3.mp4"
    source = detect_face(load_image(portrait), session.detector)
    source_shape = face_shape(source.points)
    driver_shape = face_shape(drivers[clip].track.points).mean(0)
    errors = {}
    for mode in ("relative", "absolute"):
        out = tmp_path / f"{mode}.mp4"
        config = AnimateConfig(motion=MotionConfig(mode=mode), neural=WARP_ONLY)
        api.animate(portrait, drivers[clip], out, session=api.Session(config, _detector=session.detector))
        shape = face_shape(track_video(out, session).points).mean(0)
        errors[mode] = np.abs(shape / source_shape - 1).max()
        print(f"{mode}: source {source_shape.round(3)} driver {driver_shape.round(3)} output {shape.round(3)} "
              f"max rel. deviation {errors[mode]:.3f}")
    assert errors["relative"] < 0.05
    assert errors["absolute"] > errors["relative"] + 0.02


def test_self_reenactment_warp_beats_repeating_the_source(data_dir, session, tmp_path):
    """Frame 0 of a clip as the portrait, the clip as the driver: the warp is closer to the real
    frames than repeating frame 0 (L1 and SSIM on the face crop)."""
    from skimage.metrics import structural_similarity

    from talkanim.render.crop import crop_image, face_crop_box
    from talkanim.io import VideoWriter

    clip = data_dir / "videos/OpenTalker__SadTalker/WDA_KatieHill_000.mp4"
    info = probe_video(clip)
    real = []
    driver_path = tmp_path / "driver.mp4"
    with VideoWriter(driver_path, info.width, info.height, info.fps) as writer:
        for i, frame in enumerate(iter_frames(clip, info=info)):
            if i == 60:
                break
            real.append(frame)
            writer.write(frame)
    source_path = tmp_path / "frame0.png"
    import imageio.v3 as iio

    iio.imwrite(source_path, real[0])
    out = tmp_path / "self.mp4"
    config = AnimateConfig(motion=MotionConfig(mode="absolute"), neural=WARP_ONLY)
    api.animate(source_path, driver_path, out, session=api.Session(config, _detector=session.detector))
    box = face_crop_box(detect_face(real[0], session.detector).points, 1.6)
    scores = {"warp": [], "repeat": []}
    for frame, generated in zip(real[1:], list(iter_frames(out))[1:]):
        target = crop_image(frame, box, 256).astype(np.float32) / 255
        for name, image in (("warp", generated), ("repeat", real[0])):
            crop = crop_image(image, box, 256).astype(np.float32) / 255
            l1 = np.abs(crop - target).mean()
            ssim = structural_similarity(crop, target, channel_axis=2, data_range=1.0)
            scores[name].append((l1, ssim))
    warp, repeat = np.mean(scores["warp"], 0), np.mean(scores["repeat"], 0)
    print(f"self-reenactment L1/SSIM: warp {warp.round(4)} repeat {repeat.round(4)}")
    # Margins, not a bare comparison: measured warp L1 0.140 / SSIM 0.416 against 0.170 / 0.295
    # for repeating frame 0; a warp applying only 15 % of the motion scored SSIM 0.305.
    assert warp[0] < repeat[0] - 0.015, (warp, repeat)
    assert warp[1] > repeat[1] + 0.06, (warp, repeat)
