"""Trainer pieces that need no shared data: checkpoints, resume, interrupts, torchrun, episodes.

A toy dataset (random textures under a schematic 68-point face) stands in for prepared clips;
the real-data acceptance tests are in test_train_acceptance.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from talkanim.train import checkpoint as ckpt_mod
from talkanim.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from talkanim.train.config import TrainConfig
from talkanim.train.dataset import EpisodeDataset, nearest_shot, similarity_warp, step_seed
from talkanim.train.finetune import _jitter, _split_pool
from talkanim.train.meta import LOG_NAME, train
from talkanim.train.prepare import split_identities

REPO = Path(__file__).resolve().parents[1]
SIZE = 32  # the smallest image the model accepts: keeps these tests to seconds


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def toy_face(rng: np.random.Generator, size: int) -> np.ndarray:
    """A schematic iBUG-68 face (jaw, brows, nose, eyes, lips) with random pose jitter."""
    c, r = size / 2, size * 0.28
    t = np.linspace(np.pi * 0.05, np.pi * 0.95, 17)
    jaw = np.stack([c - r * np.cos(t), c + r * 0.2 + r * np.sin(t) * 0.9], 1)
    brows = np.concatenate([np.stack([np.linspace(c - r * .8, c - r * .2, 5), np.full(5, c - r * .55)], 1),
                            np.stack([np.linspace(c + r * .2, c + r * .8, 5), np.full(5, c - r * .55)], 1)])
    nose = np.concatenate([np.stack([np.full(4, c), np.linspace(c - r * .4, c + r * .1, 4)], 1),
                           np.stack([np.linspace(c - r * .2, c + r * .2, 5), np.full(5, c + r * .2)], 1)])
    a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye = np.stack([np.cos(a) * r * .18, np.sin(a) * r * .08], 1)
    eyes = np.concatenate([eye + (c - r * .45, c - r * .3), eye + (c + r * .45, c - r * .3)])
    b = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([np.cos(b) * r * .4, np.sin(b) * r * .18], 1) + (c, c + r * .55)
    bi = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    inner = np.stack([np.cos(bi) * r * .3, np.sin(bi) * r * .08 * rng.uniform(0.2, 2)], 1) + (c, c + r * .55)
    pts = np.concatenate([jaw, brows, nose, eyes, outer, inner]).astype(np.float32)
    assert pts.shape == (68, 2)
    return pts + rng.normal(0, size * 0.01, (1, 2)).astype(np.float32)


def make_toy_dataset(root: Path, videos: int = 3, frames: int = 8, size: int = SIZE) -> Path:
    """A prepared-dataset folder (manifest + safetensors shards) of smooth random textures."""
    rng = np.random.default_rng(0)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    entries = []
    for v in range(videos):
        base = rng.uniform(0, 255, (3, 4, 4))
        imgs = []
        for f in range(frames):
            img = torch.nn.functional.interpolate(torch.tensor(base + rng.normal(0, 20, base.shape))[None].float(),
                                                  size=(size, size), mode="bilinear", align_corners=False)[0]
            imgs.append(img.clamp(0, 255).round().to(torch.uint8))
        pts = np.stack([toy_face(rng, size) for _ in range(frames)])
        pupils = np.stack([pts[:, 36:42].mean(1), pts[:, 42:48].mean(1)], 1)
        shard = f"shards/{v:05d}.safetensors"
        save_file({"images": torch.stack(imgs), "points": torch.from_numpy(pts), "pupils": torch.from_numpy(pupils),
                   "frame_index": torch.arange(frames)}, str(root / shard))
        split = "val" if v == videos - 1 else "train"
        entries.append({"index": v, "name": f"toy/{v}", "source": "toy", "identity": f"toy{v}", "split": split,
                        "train_index": v if split == "train" else None, "shard": shard, "num_frames": frames,
                        "source_frames": frames, "valid_frames": frames, "fps": 25.0, "sha256": ""})
    (root / "manifest.json").write_text(json.dumps({"version": 1, "image_size": size, "videos": entries}))
    return root


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("toy"))


def toy_config(dataset: Path, out: Path, **kw) -> TrainConfig:
    base = dict(dataset=dataset, out_dir=out, image_size=SIZE, shots=2, batch_size=2, max_steps=6, log_every=1,
                checkpoint_every=2, seed=3, device="cpu", held_frames_per_video=2, ema=True)
    base.update(kw)
    return TrainConfig(**base)


def log_losses(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / LOG_NAME).read_text().splitlines()) if "loss_g" in r]


def weights_of(out: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


# ---------------------------------------------------------------------------------------------
def test_episodes_depend_only_on_seed_and_step(toy_dataset):
    ds = EpisodeDataset(toy_dataset, "train", held_frames=2)
    a = ds.sample_episodes(7, 3, 2, seed=1)
    b = ds.sample_episodes(7, 3, 2, seed=1)
    c = ds.sample_episodes(8, 3, 2, seed=1)
    assert torch.equal(a.target, b.target) and torch.equal(a.shots, b.shots)
    assert not torch.equal(a.target, c.target) or not torch.equal(a.shots, c.shots)
    # Ranks take disjoint slices of one global batch.
    full = ds.sample_episodes(7, 4, 2, seed=1, rank=0, world_size=1)
    r1 = ds.sample_episodes(7, 2, 2, seed=1, rank=1, world_size=2)
    assert torch.equal(full.target[2:], r1.target)
    # Held frames (the last 2 of each video) are never sampled for training.
    for s in range(20):
        e = ds.sample_episodes(s, 4, 2, seed=0)
        for k in range(4):
            v = next(i for i, vid in enumerate(ds.videos) if vid.train_index == int(e.video_index[k]))
            frames = ds.videos[v].images.float() / 255
            pos = [int((frames - e.target[k]).abs().flatten(1).sum(1).argmin())]
            pos += [int((frames - s_).abs().flatten(1).sum(1).argmin()) for s_ in e.shots[k]]
            assert max(pos) < ds.videos[v].num_train_frames
    assert step_seed(0, 1) != step_seed(0, 2) and step_seed(0, 1) == step_seed(0, 1)


def test_nearest_shot_and_similarity_warp():
    rng = np.random.default_rng(0)
    p = torch.from_numpy(toy_face(rng, 64))
    shots = torch.stack([p * 1.1 - 3, p + torch.randn(68, 2) * 3]).unsqueeze(0)  # scaled copy = same pose
    assert int(nearest_shot(shots, p[None])[0]) == 0
    img = torch.rand(1, 3, 64, 64)
    same = similarity_warp(img, p[None], p[None])
    assert torch.allclose(same, img, atol=1e-4)


def test_the_hybrid_trains_on_what_the_renderer_gives_it(astronaut, astronaut_face):
    """The network's training input is the renderer's: the face warp plus its painted mouth.
    On the astronaut's crop (mouth closed) driven to open it, the training warp's mouth is the
    renderer's dark cavity (its inside darker than the bare warp's stretched lips by a clear
    margin), and with the target = the source it is the crop itself."""
    import cv2

    from talkanim.landmarks.measures import eye_centres
    from talkanim.render import warp as W
    from talkanim.render.crop import crop_image, face_crop_box
    from talkanim.train.dataset import default_warp_fn

    size = 128
    box = face_crop_box(astronaut_face.points, 1.8)
    crop = crop_image(astronaut, box, size)
    src = box.to_crop(astronaut_face.points, size).astype(np.float32)
    dst = src.copy()
    up = (src[27] - src[8]) / np.linalg.norm(src[27] - src[8])
    dst[[55, 56, 57, 58, 59, 65, 66, 67, 6, 7, 8, 9, 10]] -= 0.3 * np.linalg.norm(src[54] - src[48]) * up
    image = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0
    warp = default_warp_fn()
    same = warp(image, torch.from_numpy(src)[None], torch.from_numpy(src)[None])
    assert (same - image).abs().mean() < 0.01
    opened = warp(image, torch.from_numpy(src)[None], torch.from_numpy(dst)[None])
    inside = np.zeros((size, size), np.uint8)
    cv2.fillPoly(inside, [np.round(dst[60:68]).astype(np.int32)], 1)
    cv2.erode(inside, np.ones((3, 3), np.uint8), dst=inside)
    lum = lambda t: float(t[0].mean(0).numpy()[inside > 0].mean())  # noqa: E731
    # the bare warp of the same mouth (no fill) stretches the closed lips over the opening
    bare = W.face_warp(src, eye_centres(src), size)
    grid = W.to_normalized(bare.sample_map(W.moving_vertices(dst[None], eye_centres(dst)[None])), size, size)
    stretched = torch.nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
    print(f"mouth luminance: filled {lum(opened):.3f}, bare warp {lum(stretched):.3f}")
    assert lum(opened) < lum(stretched) - 0.1


def test_jitter_moves_points_with_the_image():
    rng = np.random.default_rng(1)
    img = torch.zeros(3, 64, 64)
    img[:, 20, 40] = 1.0  # one bright pixel as a landmark
    pts = torch.tensor([[40.0, 20.0]]).expand(68, 2).clone()
    out, moved = _jitter(img, pts, 64, rng, 4)
    for k in range(4):
        y, x = np.unravel_index(int(out[k, 0].argmax()), (64, 64))
        assert abs(x - moved[k, 0, 0]) <= 1.0 and abs(y - moved[k, 0, 1]) <= 1.0


def test_fine_tuning_holds_out_whole_targets_or_single_pairs():
    # 8 shots, each the target of 2 pairs: a quarter of the targets held out, with both their pairs
    pool = torch.arange(8).repeat_interleave(2)
    train_ix, held_ix = _split_pool(pool, 0.25, seed=0)
    held_targets = set(pool[held_ix].tolist())
    assert len(held_targets) == 2 and len(held_ix) == 4
    assert not held_targets & set(pool[train_ix].tolist())
    assert sorted(train_ix.tolist() + held_ix.tolist()) == list(range(16))
    # one shot: every pair has the same target, so pairs (jittered sources) are held out
    train_ix, held_ix = _split_pool(torch.zeros(16, dtype=torch.long), 0.25, seed=0)
    assert len(held_ix) == 4 and len(train_ix) == 12
    # nothing to hold out without two units, or when asked not to
    assert len(_split_pool(torch.zeros(1, dtype=torch.long), 0.25, seed=0)[1]) == 0
    assert len(_split_pool(pool, 0.0, seed=0)[1]) == 0


def test_split_identities():
    ids = [f"p{i}" for i in range(10)]
    s = split_identities(ids, 0.2, seed=0)
    assert sorted(v for v in s.values()).count("val") == 2
    assert split_identities(ids, 0.2, seed=0) == s
    assert list(split_identities(["a", "b"], 0.2, 0).values()).count("val") == 1
    assert list(split_identities(["a"], 0.5, 0).values()) == ["train"]


def test_checkpoint_roundtrip_optimizer_and_rng(tmp_path):
    import random

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.utils.spectral_norm(torch.nn.Linear(8, 2)))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
    torch.manual_seed(11), np.random.seed(12), random.seed(13)
    path = save_checkpoint(tmp_path, 3, modules={"net": net}, optimizers={"opt": opt}, state={"note": "x"})
    expect = (torch.rand(3), np.random.rand(3), random.random())
    sd_before = {k: v.clone() for k, v in net.state_dict().items()}
    opt_before = opt.state_dict()

    net2 = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.utils.spectral_norm(torch.nn.Linear(8, 2)))
    opt2 = torch.optim.Adam(net2.parameters(), lr=1.0)
    doc = load_checkpoint(path, modules={"net": net2}, optimizers={"opt": opt2})
    assert doc["step"] == 3 and doc["state"] == {"note": "x"}
    assert all(torch.equal(sd_before[k], v) for k, v in net2.state_dict().items())
    o2 = opt2.state_dict()
    assert o2["param_groups"][0]["lr"] == 1e-3 and tuple(o2["param_groups"][0]["betas"]) == (0.5, 0.9)
    for pid, st in opt_before["state"].items():
        for k, v in st.items():
            assert torch.equal(v, o2["state"][pid][k])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]


def test_checkpoint_files_hold_no_pickle(tmp_path):
    net = torch.nn.Linear(3, 3)
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path, 1, modules={"net": net}, optimizers={"opt": opt})
    for f in path.iterdir():
        data = f.read_bytes()
        assert not zipfile.is_zipfile(f), f"{f.name} is a zip (torch.save) archive"
        if f.suffix == ".safetensors":
            # safetensors: u64 header length, then a JSON header; never a pickle opcode stream
            n = int.from_bytes(data[:8], "little")
            assert data[8:9] == b"{" and json.loads(data[8:8 + n])
            with safe_open(str(f), "pt") as h:  # safetensors parser only
                assert len(list(h.keys())) > 0
        else:
            json.loads(f.read_text())
    json.loads((tmp_path / "latest.json").read_text())


def test_interrupted_save_leaves_last_checkpoint_intact(tmp_path, monkeypatch):
    net = torch.nn.Linear(3, 3)
    opt = torch.optim.Adam(net.parameters())
    first = save_checkpoint(tmp_path, 1, modules={"net": net}, optimizers={"opt": opt})
    calls = {"n": 0}
    real = ckpt_mod.save_file

    def dying_save(tensors, path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # weights written, optimizer file half-way: Ctrl-C
            Path(path).write_bytes(b"partial")
            raise KeyboardInterrupt
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(ckpt_mod, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, modules={"net": net}, optimizers={"opt": opt})
    assert latest_checkpoint(tmp_path) == first
    assert list_checkpoints(tmp_path) == [first]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_resume_after_interrupt_is_bit_exact(toy_dataset, tmp_path):
    """6 steps straight == 5 steps interrupted by Ctrl-C (last checkpoint at 4) + resume to 6."""
    straight = train(toy_config(toy_dataset, tmp_path / "a"))
    assert straight.step == 6

    def interrupt_at_5(step, total, metrics):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(toy_config(toy_dataset, tmp_path / "b"), progress=interrupt_at_5)
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step-00000004"
    assert not (tmp_path / "b" / "model.safetensors").exists()
    with pytest.raises(Exception, match="already holds a training run"):
        train(toy_config(toy_dataset, tmp_path / "b"))
    resumed = train(toy_config(toy_dataset, tmp_path / "b", resume=True))
    assert resumed.step == 6 and resumed.steps_run == 2

    a, b = log_losses(tmp_path / "a"), log_losses(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k != "seconds"} == {k: v for k, v in rb.items() if k != "seconds"}
    wa, wb = weights_of(tmp_path / "a"), weights_of(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert straight.checksum == resumed.checksum
    # and the weights did move
    init = train(toy_config(toy_dataset, tmp_path / "c", max_steps=0))
    assert init.checksum != straight.checksum


def test_content_only_training_moves_the_generator_and_leaves_the_discriminator(toy_dataset, tmp_path):
    r = train(toy_config(toy_dataset, tmp_path / "co", max_steps=3, adversarial=False, ema=False),
              warp_fn=similarity_warp)
    w = weights_of(tmp_path / "co")
    init = train(toy_config(toy_dataset, tmp_path / "i", max_steps=0, ema=False), warp_fn=similarity_warp)
    w0 = weights_of(tmp_path / "i")
    assert r.step == 3
    moved = {k for k in w if not torch.equal(w[k], w0[k])}
    assert any(k.startswith("generator.") for k in moved) and any(k.startswith("embedder.") for k in moved)
    assert not any(k.startswith("discriminator.") for k in moved)
    logged = log_losses(tmp_path / "co")[-1]
    assert "loss_d" not in logged and logged["l1"] > 0


def test_time_budget_stops_and_checkpoints(toy_dataset, tmp_path):
    r = train(toy_config(toy_dataset, tmp_path / "t", max_steps=10_000, time_budget_s=0.5, checkpoint_every=10_000))
    assert r.stopped == "time_budget" and 0 < r.step < 10_000
    assert latest_checkpoint(tmp_path / "t" / "checkpoints").name == f"step-{r.step:08d}"
    assert (tmp_path / "t" / "model.safetensors").is_file()


@pytest.mark.slow
def test_torchrun_two_processes_hold_identical_weights(toy_dataset, tmp_path):
    out, sums = tmp_path / "ddp", tmp_path / "sums"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "talkanim.train.meta", "--dataset", str(toy_dataset), "--out", str(out), "--image-size", str(SIZE),
           "--shots", "2", "--batch-size", "1", "--max-steps", "4", "--log-every", "2", "--checkpoint-every", "2",
           "--device", "cpu", "--held-frames", "2", "--checksum-dir", str(sums)]
    # Own session, so a hang can be ended by killing exactly the processes this test started.
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("torchrun did not finish in 240 s")
    assert proc.returncode == 0, stderr[-3000:]
    s0, s1 = (sums / "rank0.txt").read_text(), (sums / "rank1.txt").read_text()
    assert s0 == s1
    assert (out / "model.safetensors").is_file() and latest_checkpoint(out / "checkpoints").name == "step-00000004"
    # Only rank 0 wrote the log: one record per logged step.
    assert [r["step"] for r in log_losses(out)] == [2, 4]
    # The replicas trained: they differ from a fresh model.
    init = train(toy_config(toy_dataset, tmp_path / "init", max_steps=0, ema=False, seed=0))
    assert init.checksum.strip() != s0.strip()
