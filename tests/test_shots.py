"""Extra shots of the portrait's person: choosing one per frame (motion) and warping from it
(render), on frames of the example clip: a closed-mouth frame as the portrait, a wide-open one
as the shot, the clip's own frames as ground truth."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from talkanim.config import RenderConfig
from talkanim.io import iter_frames
from talkanim.landmarks import detect_face, make_detector
from talkanim.landmarks.measures import mouth_opening
from talkanim.motion import blend_weights, nearest_shots, shot_weights
from talkanim.render import FaceRenderer
from talkanim.render.shots import face_mask


# ------------------------------------------------------------------ choosing the shot (pure)
def _shape(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(68, 2)) * 20 + 100


def _similar(points: np.ndarray, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, -s], [s, c]]).T * scale + np.asarray(shift)


def test_the_same_face_tilted_scaled_and_moved_is_the_nearest_shot():
    a, b = _shape(0), _shape(1)
    targets = np.stack([_similar(b, 0.4, 2.5, (30, -7)), _similar(a, -0.3, 0.5, (0, 90))])
    assert nearest_shots(np.stack([a, b]), targets).tolist() == [1, 0]


def test_weights_sum_to_one_and_fade_over_the_switch():
    a, b = _shape(0), _shape(1)
    targets = np.stack([a] * 10 + [b] * 10)
    w = shot_weights(np.stack([a, b]), targets, blend=1, fade_frames=5)
    assert w.shape == (20, 2)
    assert np.allclose(w.sum(axis=1), 1.0)
    assert (w[:8, 0] == 1).all() and (w[12:, 1] == 1).all()
    ramp = w[8:12, 1]
    assert (np.diff(ramp) > 0).all() and 0 < ramp[0] < ramp[-1] < 1  # a linear cross-fade
    assert (shot_weights(np.stack([a, b]), targets, blend=1, fade_frames=1)[[9, 10]] == [[1, 0], [0, 1]]).all()


def test_hysteresis_keeps_the_current_shot_when_another_is_barely_nearer():
    base = _shape(0)
    a, b = base + _shape(1) * 0.02, base + _shape(2) * 0.02  # two expressions of one face
    # targets alternating between just-nearer-to-a and just-nearer-to-b: no flicker
    mix = [(0.51 if i % 2 else 0.49) * a + (0.49 if i % 2 else 0.51) * b for i in range(12)]
    w = shot_weights(np.stack([a, b]), np.stack(mix), blend=1, switch_margin=0.2, fade_frames=1)
    assert len(set(w.argmax(axis=1).tolist())) == 1
    flicker = shot_weights(np.stack([a, b]), np.stack(mix), blend=1, switch_margin=0.0, fade_frames=1)
    assert len(set(flicker.argmax(axis=1).tolist())) == 2


def test_blend_weights_use_the_nearest_shots_and_change_continuously():
    base = _shape(0)
    shots = np.stack([base + _shape(s) * 0.05 for s in range(1, 7)])  # six expressions of one face
    # a target gliding through shots 0, 1, ..., 5: the set of the 3 nearest changes on the way
    path = np.stack([(1 - t) * shots[j] + t * shots[j + 1] for j in range(5) for t in np.linspace(0, 1, 200)])
    w = blend_weights(shots, path, count=3)
    assert np.allclose(w.sum(axis=1), 1.0) and (w >= 0).all()
    assert ((w > 0).sum(axis=1) <= 3).all()
    assert (w.argmax(axis=1) == nearest_shots(shots, path)).all()
    assert w[0, 0] > 0.999 and w[-1, 5] > 0.999  # a shot matched exactly takes it all
    assert len({tuple(np.flatnonzero(row > 0)) for row in w}) > 2  # membership did change
    # ...without jumps: a 1/200 step of the target moves no weight by more than a few percent
    assert np.abs(np.diff(w, axis=0)).max() < 0.05
    assert (blend_weights(shots, path, count=1) == np.eye(6)[nearest_shots(shots, path)]).all()


def test_shot_weights_blend_the_nearest_by_default():
    shots = np.stack([_shape(0) + _shape(s) * 0.05 for s in range(1, 5)])
    targets = 0.6 * shots[1] + 0.4 * shots[2]
    w = shot_weights(shots, np.stack([targets] * 6), fade_frames=3)
    assert np.allclose(w, blend_weights(shots, targets[None], 3))  # constant target: no fade
    assert w[0, 1] > w[0, 2] > 0 and (w[:, 1] < 1).all()


# ------------------------------------------------------------------ warping from it (real frames)
PORTRAIT_FRAME, SHOT_FRAME = 61, 28  # mouth opening 0.01 and 0.35 (inner gap / mouth width)


@pytest.fixture(scope="module")
def clip(example_driver):
    frames = {i: f.copy() for i, f in enumerate(iter_frames(example_driver)) if i in (PORTRAIT_FRAME, SHOT_FRAME)}
    detector = make_detector("dlib")
    faces = {i: detect_face(frames[i], detector) for i in frames}
    return frames, faces


def test_the_example_frames_are_what_the_tests_assume(clip):
    _, faces = clip
    assert mouth_opening(faces[PORTRAIT_FRAME].points) < 0.05
    assert mouth_opening(faces[SHOT_FRAME].points) > 0.25


def _interior_l1(frame: np.ndarray, real: np.ndarray, points: np.ndarray) -> float:
    """Mean abs difference (0..255) inside the face outline of `points`."""
    mask = face_mask(points, max(frame.shape[:2]))[: frame.shape[0], : frame.shape[1]] > 0.5
    return float(np.abs(frame.astype(np.float64) - real)[mask].mean())


def test_an_open_mouthed_shot_brings_the_real_mouth_to_open_mouthed_frames(clip):
    frames, faces = clip
    portrait, shot = frames[PORTRAIT_FRAME], frames[SHOT_FRAME]
    target = faces[SHOT_FRAME].points  # same camera: the shot frame's landmarks are a target
    renderer = FaceRenderer(portrait, faces[PORTRAIT_FRAME], RenderConfig(),
                            shots=[(shot, faces[SHOT_FRAME])])
    plain = renderer.render(target)
    from_shot = renderer.render_batch(target[None], shot_weights=np.array([[0.0, 1.0]]))[0]
    err_plain = _interior_l1(plain, shot, target)
    err_shot = _interior_l1(from_shot, shot, target)
    # measured: 17.9 from the closed-mouth portrait (mouth fill), 5.2 from the shot
    assert err_shot < 0.5 * err_plain, (err_shot, err_plain)
    # weights all on the portrait: exactly the render without shots
    same = renderer.render_batch(target[None], shot_weights=np.array([[1.0, 0.0]]))[0]
    assert np.array_equal(same, plain)
    # outside the face (its outline grown by a third) hair and background stay the portrait's
    centre = target.mean(axis=0)
    grown = face_mask(centre + (target - centre) * 1.33, max(portrait.shape[:2]))
    outside = grown[: portrait.shape[0], : portrait.shape[1]] == 0
    assert outside.mean() > 0.3
    assert np.array_equal(from_shot[outside], plain[outside])


def test_a_large_portrait_keeps_the_shots_full_resolution(clip):
    """On a 960 px picture the crop is pasted at ~1000 px: the shot's pixels must be resampled
    there, not at the 256 px working size (measured: Laplacian variance inside the face 7.6 vs
    13.6 for the real frame; 4.1 when the shot went through 256 px)."""
    import cv2

    frames, _ = clip
    big = {i: cv2.resize(f, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC) for i, f in frames.items()}
    detector = make_detector("dlib")
    faces = {i: detect_face(big[i], detector) for i in big}
    renderer = FaceRenderer(big[PORTRAIT_FRAME], faces[PORTRAIT_FRAME], RenderConfig(),
                            shots=[(big[SHOT_FRAME], faces[SHOT_FRAME])])
    assert renderer.shots.paste_size > 3 * renderer.size
    target = faces[SHOT_FRAME].points
    out = renderer.render_batch(target[None], shot_weights=np.array([[0.0, 1.0]]))[0]
    inside = face_mask(target, big[SHOT_FRAME].shape[0]) > 0.9

    def sharpness(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        return float(cv2.Laplacian(grey, cv2.CV_64F)[inside].var())

    assert sharpness(out) > 0.45 * sharpness(big[SHOT_FRAME])


def test_cross_faded_shots_add_up_to_their_weights(clip):
    frames, faces = clip
    shot = (frames[SHOT_FRAME], faces[SHOT_FRAME])
    renderer = FaceRenderer(frames[PORTRAIT_FRAME], faces[PORTRAIT_FRAME], shots=[shot, shot])
    target = faces[SHOT_FRAME].points[None]
    halves = renderer.render_batch(target, shot_weights=np.array([[0.0, 0.5, 0.5]]))[0].astype(int)
    whole = renderer.render_batch(target, shot_weights=np.array([[0.0, 1.0, 0.0]]))[0].astype(int)
    assert np.abs(halves - whole).max() <= 1  # the same shot twice at 1/2 each = once at 1


def test_bad_shot_weights_are_refused(clip):
    frames, faces = clip
    renderer = FaceRenderer(frames[PORTRAIT_FRAME], faces[PORTRAIT_FRAME],
                            shots=[(frames[SHOT_FRAME], faces[SHOT_FRAME])])
    with pytest.raises(ValueError, match="shot weights"):
        renderer.render_batch(faces[SHOT_FRAME].points[None], shot_weights=np.array([[0.0, 0.5, 0.5]]))


# The shot as another camera would take it: warmer white balance (red up 25 %, blue down 28 %).
WARM = (1.25, 1.0, 0.72)


@pytest.fixture(scope="module")
def with_a_warm_shot(tmp_path_factory, clip, example_driver) -> dict[str, np.ndarray]:
    """The example clip driving its closed-mouth frame, once alone ("plain") and once with the
    open-mouthed frame recoloured to another white balance as `--shot` ("shot"); and "warm",
    that shot picture."""
    frames, _ = clip
    folder = tmp_path_factory.mktemp("warm")
    warm = np.clip(frames[SHOT_FRAME].astype(np.float64) * WARM + 0.5, 0, 255).astype(np.uint8)
    iio.imwrite(folder / "portrait.png", frames[PORTRAIT_FRAME])
    iio.imwrite(folder / "warm.png", warm)
    outputs = {"warm": warm}
    for name, extra in (("plain", []), ("shot", ["--shot", str(folder / "warm.png")])):
        out = folder / f"{name}.mp4"
        # dlib's landmarks, as in `clip`: the frame numbers below were measured with them (with
        # the mesh's the shot starts fading in a few frames earlier)
        proc = subprocess.run([sys.executable, "-m", "talkanim", "animate", str(folder / "portrait.png"),
                               str(example_driver), "-o", str(out), "--model", "none", "--json",
                               "--landmarks", "dlib", *extra],
                              capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        assert json.loads(proc.stdout)["frames"] == 100
        outputs[name] = np.stack(list(iter_frames(out)))
    return outputs


def test_animate_with_a_shot_warps_open_mouthed_frames_from_it(with_a_warm_shot):
    """End to end through the CLI: the shot changes exactly the frames it is chosen for.

    Over frames 27-32 the targets are 37 % nearer the shot than the portrait (weighted shape
    distance 0.0149 vs 0.0237), past the 20 % switch margin; with every point weighted alike
    the jaw outline dominated and they were only 14 % nearer, and the shot never served."""
    outputs = {k: v.astype(np.int16) for k, v in with_a_warm_shot.items()}
    changed = np.abs(outputs["shot"] - outputs["plain"]).mean(axis=(1, 2, 3))
    print("mean change per frame:", changed.round(2).tolist())
    # the driver's widest stretch (frames 27-32) comes from the shot; the frames long before it
    # come from the portrait: identical but for the encoder's spread (x264 codes a frame from its
    # neighbours and shares its bit budget: measured 0 up to frame 12, 0.02-0.67 on 13-19 as the
    # shot fades in from frame 22, and 4.0-5.3 on frames 27-32)
    assert (changed[:10] == 0).all(), changed[:10].round(4)
    assert changed[27:33].min() > 1.5 * changed[10:20].max(), changed[10:34].round(2)


def test_a_shot_with_another_white_balance_takes_the_portraits_colours(with_a_warm_shot, clip):
    """The shot's face comes in with the portrait's colours: on the frames it serves (27-32),
    the skin's mean colour (the face without the mouth) stays within 8 levels per channel of the
    portrait-only render (measured 1.3 on red, 2.5 on green, 6.4 on blue, on frame 27; 5.2 on
    blue before the head began to carry its face outline, and 4.1 before the driver's neutral face
    came from frames turned as usual: each moves what the shot lends on these frames, and the two
    pictures' faces differ in more than their white balance; with the transfer switched off it
    read 28.7), although the shot picture's own face is 46 levels redder and 36 less blue than the
    portrait's. The mouth is left out: there
    the portrait-only render paints a cavity and teeth where the shot shows its real inside, a
    difference of content, not of colour (a darker painted cavity moved the whole face's mean by
    half a level)."""
    import cv2

    frames, faces = clip
    inside = face_mask(faces[SHOT_FRAME].points, 320)[:320, :320] > 0.5  # where the face is on those frames
    mouth = np.zeros((320, 320), np.uint8)
    cv2.fillPoly(mouth, [np.round(faces[SHOT_FRAME].points[48:60]).astype(np.int32)], 1)
    inside &= cv2.dilate(mouth, np.ones((9, 9), np.uint8)) == 0  # the lips' box moves a little over 27-32
    shot_cast = with_a_warm_shot["warm"][inside].mean(axis=0) - frames[PORTRAIT_FRAME][inside].mean(axis=0)
    assert shot_cast[0] > 30 and shot_cast[2] < -25, shot_cast  # the shot really looks different
    for k in range(27, 33):
        plain = with_a_warm_shot["plain"][k][inside].mean(axis=0)
        shot = with_a_warm_shot["shot"][k][inside].mean(axis=0)
        assert np.abs(shot - plain).max() < 8.0, (k, shot - plain)


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory, clip, example_driver) -> dict:
    """The example clip driving its closed-mouth frame with two more pictures of the person
    (frames 28 and 45): named with `--shot` twice ("blend", the default three-picture blend),
    the same with `--shot-blend 1` ("nearest"), and as a `--shots` folder ("folder")."""
    frames, _ = clip
    folder = tmp_path_factory.mktemp("two_shots")
    extra = {i: f for i, f in enumerate(iter_frames(example_driver)) if i == 45}
    (folder / "shots").mkdir()
    iio.imwrite(folder / "portrait.png", frames[PORTRAIT_FRAME])
    iio.imwrite(folder / "shots" / "open.png", frames[SHOT_FRAME])
    iio.imwrite(folder / "shots" / "other.png", extra[45])
    named = ["--shot", str(folder / "shots" / "open.png"), "--shot", str(folder / "shots" / "other.png")]

    def animate(name, *options):
        out = folder / f"{name}.mp4"
        proc = subprocess.run([sys.executable, "-m", "talkanim", "animate", str(folder / "portrait.png"),
                               str(example_driver), "-o", str(out), "--model", "none", *options],
                              capture_output=True, timeout=300)
        return out, proc

    outputs = {"animate": animate}
    for name, options in (("blend", named), ("nearest", [*named, "--shot-blend", "1"]),
                          ("folder", ["--shots", str(folder / "shots")])):
        out, proc = animate(name, *options)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        outputs[name] = np.stack(list(iter_frames(out))).astype(np.int16)
    return outputs


def test_animate_blends_several_shots_unless_told_not_to(two_shots):
    """With two shots (three pictures) the default blends the two nearest; `--shot-blend 1`
    takes the nearest alone, so some frames differ; `--shot-blend 0` is a usage error."""
    changed = np.abs(two_shots["blend"] - two_shots["nearest"]).mean(axis=(1, 2, 3))
    assert len(changed) == 100 and (changed > 0.5).sum() >= 10, changed.round(2)
    out, proc = two_shots["animate"]("zero", "--shot-blend", "0")
    assert proc.returncode == 2 and not out.exists()


def test_a_shots_folder_serves_like_naming_each_picture(two_shots, with_a_warm_shot):
    """`--shots DIR` uses every picture of the folder as `--shot` does: the same frames as
    naming them one by one, and frames that differ from the portrait alone where the pictures
    serve (measured: with three pictures to blend, all 100 frames change by more than 0.5 levels)."""
    assert np.abs(two_shots["folder"] - two_shots["blend"]).max() == 0
    alone = with_a_warm_shot["plain"].astype(np.int16)  # the same portrait and driver, no shots
    changed = np.abs(two_shots["folder"] - alone).mean(axis=(1, 2, 3))
    assert (changed > 0.5).sum() >= 10, changed.round(2)
