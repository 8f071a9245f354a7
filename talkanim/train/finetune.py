"""Few-shot fine-tuning on the T shots of a new person (PAPER_NOTES.md, "Few-shot fine-tuning").

1. Feed-forward start: e_NEW = mean of E over the shots; psi' = P e_NEW becomes a trainable
   tensor (the person's own AdaIN parameters); G keeps its meta-learned weights as a start.
2. D keeps V and b; its person vector w' starts at w0 + e_NEW and is trained too.
3. G (with psi') and D are trained on the shots by self-reconstruction (each shot's own
   landmarks -> that shot) with content + adversarial losses, no matching loss.
4. Ours: a quarter of the shots (or, with one shot, of its pairs) are held out and scored every
   few steps; the best check's G and psi' are returned, the start when no step beats it.

Hybrid mode needs a warped source per target: another shot warped onto the target's
landmarks. With a single shot that would be the target itself (nothing to learn), so the source
is a randomly jittered copy (small rotation, scale, shift) warped back onto the shot's landmarks:
the network learns to fix what warping does to this face.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkanim.model.losses import content_terms, d_hinge_loss, feature_matching_loss, g_adversarial_loss
from talkanim.model.sketch import draw_sketch, region_mask
from talkanim.model.talking_head import TalkingHeadModel
from talkanim.train.config import FinetuneConfig
from talkanim.motion.shots import nearest_shots, shape_distances
from talkanim.train.dataset import default_warp_fn, step_seed
from talkanim.devices import resolve_device

WarpFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# progress(step, steps, {"loss": ..., "l1": ...})
Progress = Callable[[int, int, dict[str, float]], None]

# On a CPU the default budget is time-bound: up to CPU_MAX_STEPS steps, stopping after
# CPU_TIME_BUDGET_S (a step of the tiny preset takes 0.4 s on an idle 2-core CPU, 1.6-2.9 s on a
# busy one: a step count alone cannot promise "about a minute"). GPUs do the paper's ~40
# epochs over the shots.
CPU_TIME_BUDGET_S = 50.0
CPU_MAX_STEPS = 150


@dataclass
class FineTuned:
    """The fine-tuned person. The model's generator and discriminator were adapted in place."""

    adain_params: torch.Tensor  # psi' (P,): pass to model.generate / model.refiner
    embedding: torch.Tensor  # e_NEW (D,): the feed-forward start
    person_vector: torch.Tensor  # w' (D,): the discriminator's vector for this person
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # generator loss per step
    l1: list[float] = field(default_factory=list)  # L1 of the reconstructed shots per step
    # The step whose weights were kept (lowest L1 on the held-out pairs; 0 = the feed-forward
    # start) and that L1 at each check, as (step, l1).
    kept_step: int = 0
    held_l1: list[tuple[int, float]] = field(default_factory=list)


def default_finetune_steps(device: str | torch.device, num_shots: int) -> int:
    """The default number of steps: on a CPU at most 150, cut by a 50 s time budget in
    `finetune` (the paper's 40 epochs are out of reach there); on a GPU the paper's ~40 epochs
    over the shots at batch 4, at least 200 steps."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return max(200, int(math.ceil(40 * num_shots / 4)))
    return CPU_MAX_STEPS


def finetune(model: TalkingHeadModel, images: torch.Tensor, points: torch.Tensor, pupils: torch.Tensor | None = None,
             *, steps: int | None = None, device: str | torch.device = "auto", lr: float | None = None,
             warp_fn: WarpFn | None = None, progress: Progress | None = None,
             config: FinetuneConfig | None = None) -> FineTuned:
    """Fine-tune `model` on T shots of one person: images (T, 3, H, H) in [0, 1], points
    (T, 68, 2) and pupils (T, 2, 2) in crop pixels at H (resized to the model's size if H
    differs). `steps` None uses `default_finetune_steps` (on a CPU also a 50 s time budget); 0 returns the feed-forward start.
    `lr` overrides the generator's learning rate. The model ends in eval mode on `device`.
    """
    cfg = config or FinetuneConfig()
    dev = resolve_device(device)
    warp_fn = warp_fn or default_warp_fn()
    size = model.config.image_size
    hybrid = model.config.mode == "hybrid"
    model.to(dev)
    start = time.perf_counter()

    images, points, pupils = _to_model_size(images, points, pupils, size)
    images, points = images.to(dev).float(), points.to(dev).float()
    pupils = None if pupils is None else pupils.to(dev).float()
    t_shots = images.shape[0]
    sketches = draw_sketch(points, size, pupils)
    regions = region_mask(points, size)

    model.eval()
    with torch.no_grad():
        e_new = model.embedder(images, sketches).mean(dim=0)
        psi0 = model.generator.project(e_new[None])[0]
    psi = nn.Parameter(psi0.clone())
    adversarial = cfg.adversarial if cfg.adversarial is not None else dev.type == "cuda"
    d = model.discriminator if adversarial else None
    w_person = nn.Parameter((d.w0 + e_new).detach().clone()) if d is not None else None
    budget = cfg.time_budget_s
    if steps is None and budget is None and dev.type == "cpu":
        budget = CPU_TIME_BUDGET_S
    steps = default_finetune_steps(dev, t_shots) if steps is None else int(steps)
    result = FineTuned(psi.detach().clone(), e_new.detach(), None if w_person is None else w_person.detach().clone(),
                       steps=0, seconds=0.0)
    if steps <= 0:
        result.seconds = time.perf_counter() - start
        return result

    # Every (target, warped source) pair the steps draw from, computed once; some are held out
    # to judge the steps (see _HeldOut).
    pool_target, pool_warped = _source_pool(images, points, hybrid, warp_fn, cfg.seed)
    train_ix, held_ix = _split_pool(pool_target, cfg.held_fraction, cfg.seed)
    if not (hybrid and model.config.blend_region == "mouth_eyes"):
        regions = None  # the network may change the whole crop
    held = _HeldOut(model.generator, psi, images, sketches, regions,
                    pool_target[held_ix], None if pool_warped is None else pool_warped[held_ix])

    g = model.generator
    opt_g = torch.optim.Adam([{"params": list(g.parameters())}, {"params": [psi], "lr": 10 * (lr or cfg.lr_g)}],
                             lr=lr or cfg.lr_g, betas=tuple(cfg.betas))
    opt_d = None
    if d is not None:
        d_params = [p for n, p in d.named_parameters() if n not in ("W", "w0")] + [w_person]
        opt_d = torch.optim.Adam(d_params, lr=cfg.lr_d, betas=tuple(cfg.betas))
    w = cfg.loss
    model.train()
    gen = torch.Generator().manual_seed(step_seed(cfg.seed, 0, 99))
    batch = min(cfg.batch_size, max(len(train_ix), 1))
    held.check(0)
    done = 0
    for step in range(steps):
        if budget is not None and time.perf_counter() - start > budget:
            break
        done = step + 1
        pick = train_ix[torch.randint(len(train_ix), (batch,), generator=gen)]
        t_ix = pool_target[pick].to(dev)
        target, sketch = images[t_ix], sketches[t_ix]
        warped = pool_warped[pick].to(dev) if hybrid else None
        region = None if regions is None else regions[t_ix]
        params = psi.unsqueeze(0).expand(batch, -1)

        if d is not None:
            d.requires_grad_(False)
        fake = g(sketch, params, warped, region)
        terms = content_terms(fake, target, points[t_ix])
        loss = w.l1 * terms["l1"] + w.msssim * terms["msssim"] + w.region * terms["region"]
        if d is not None:
            person = w_person.unsqueeze(0).expand(batch, -1)
            fake_score, fake_feats = d(fake, sketch, person_vector=person)
            with torch.no_grad():
                _, real_feats = d(target, sketch, person_vector=person)
            loss = loss + w.adv * g_adversarial_loss(fake_score) + w.fm * feature_matching_loss(real_feats, fake_feats)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([*g.parameters(), psi], cfg.grad_clip)
        opt_g.step()

        if d is not None:
            d.requires_grad_(True)
            person = w_person.unsqueeze(0).expand(2 * batch, -1)
            scores, _ = d(torch.cat([target, fake.detach()]), torch.cat([sketch, sketch]), person_vector=person)
            real_s, fake_s = scores.chunk(2)
            loss_d = d_hinge_loss(real_s, fake_s)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(d_params, cfg.grad_clip)
            opt_d.step()
        result.losses.append(float(loss.detach()))
        result.l1.append(float(terms["l1"].detach()))
        if progress is not None:
            progress(step + 1, steps, {"loss": result.losses[-1], "l1": result.l1[-1]})
        if done % cfg.check_every == 0:
            held.check(done)

    if done % cfg.check_every:
        held.check(done)
    result.kept_step, result.held_l1 = held.restore_best(done), held.history
    model.eval()
    result.adain_params = psi.detach().clone()
    result.person_vector = None if w_person is None else w_person.detach().clone()
    result.steps = done
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def reconstruct(model: TalkingHeadModel, adain_params: torch.Tensor, shot_images: torch.Tensor,
                shot_points: torch.Tensor, target_points: torch.Tensor, target_pupils: torch.Tensor | None = None,
                *, warp_fn: WarpFn | None = None) -> torch.Tensor:
    """Frames for target landmarks (B, 68, 2) with psi `adain_params` (P,); in hybrid mode each
    is warped from the shot nearest it in pose/expression (as animate does). (B, 3, S, S)."""
    warp_fn = warp_fn or default_warp_fn()
    dev = model.device
    warped = None
    if model.config.mode == "hybrid":
        slot = torch.from_numpy(nearest_shots(shot_points.cpu().numpy(), target_points.cpu().numpy()))
        warped = warp_fn(shot_images[slot].float(), shot_points[slot].float(), target_points.float()).to(dev)
    model.eval()
    return model.generate(target_points.to(dev).float(), None if target_pupils is None else target_pupils.to(dev).float(),
                          adain_params.to(dev), warped)


# ---------------------------------------------------------------------------------------------
def _split_pool(pool_target: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held) indices into the pool. Whole targets are held out when there are several,
    so a held pair's target shot is never trained on; with one target (a single shot), pairs.
    Nothing is held when fewer than two units exist or `fraction` is 0."""
    keyed = pool_target if len(torch.unique(pool_target)) > 1 else torch.arange(len(pool_target))
    units = torch.unique(keyed)
    n_held = min(len(units) - 1, round(fraction * len(units))) if fraction > 0 else 0
    if n_held <= 0:
        return torch.arange(len(pool_target)), torch.arange(0)
    g = torch.Generator().manual_seed(step_seed(seed, 0, 98))
    held_units = units[torch.randperm(len(units), generator=g)[:n_held]]
    is_held = torch.isin(keyed, held_units)
    return torch.nonzero(~is_held).flatten(), torch.nonzero(is_held).flatten()


class _HeldOut:
    """Judges fine-tuning on pairs it never trains on and keeps the best weights seen.

    Measured on the validation identities: 150 steps on 8 shots overfit them (the hybrid's
    self-reenactment SSIM at T = 8 fell from 0.791 feed-forward to 0.783). So the L1 of the
    held-out pairs is checked every few steps, the generator and psi' of the best check are
    kept, and when no step beats the start, the feed-forward start is what comes back (with
    the check: 0.791).
    """

    def __init__(self, generator: nn.Module, psi: nn.Parameter, images, sketches, regions, targets, warped):
        self.generator, self.psi = generator, psi
        self.images, self.sketches, self.regions = images, sketches, regions
        self.targets = targets.to(images.device)
        self.warped = None if warped is None else warped.to(images.device)
        self.history: list[tuple[int, float]] = []
        self.best: tuple[int, float, dict, torch.Tensor] | None = None

    @torch.no_grad()
    def check(self, step: int) -> None:
        if len(self.targets) == 0:
            return
        was_training = self.generator.training
        self.generator.eval()
        t = self.targets
        region = None if self.regions is None else self.regions[t]
        fake = self.generator(self.sketches[t], self.psi.unsqueeze(0).expand(len(t), -1), self.warped, region)
        self.generator.train(was_training)
        l1 = float((fake - self.images[t]).abs().mean())
        self.history.append((step, l1))
        if self.best is None or l1 < self.best[1]:
            state = {k: v.detach().clone() for k, v in self.generator.state_dict().items()}
            self.best = (step, l1, state, self.psi.detach().clone())

    @torch.no_grad()
    def restore_best(self, last_step: int) -> int:
        """Load the best check's weights and return its step (`last_step` without held pairs)."""
        if self.best is None:
            return last_step
        step, _, state, psi = self.best
        self.generator.load_state_dict(state)
        self.psi.copy_(psi)
        return step


def _to_model_size(images, points, pupils, size):
    h = images.shape[-1]
    if h == size:
        return images, points, pupils
    s = size / h
    images = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=s < 1)
    points = (points.float() + 0.5) * s - 0.5
    pupils = None if pupils is None else (pupils.float() + 0.5) * s - 0.5
    return images, points, pupils


@torch.no_grad()
def _source_pool(images: torch.Tensor, points: torch.Tensor, hybrid: bool, warp_fn: WarpFn, seed: int,
                 max_pairs: int = 64, jitters: int = 16, neighbours: int = 2) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(target index (N,), warped source (N, 3, S, S) | None) for the fine-tuning steps.

    Several shots: each target with its `neighbours` nearest other shots. One shot: `jitters`
    copies of it under random small similarity transforms, warped back onto its landmarks.
    """
    t = images.shape[0]
    if not hybrid:
        return torch.arange(t), None
    rng = np.random.default_rng(seed)
    if t > 1:
        # Each target with its nearest other shots: at use time the hybrid warps from the shot
        # nearest each frame, so small pose gaps are what it must learn to fix.
        near = min(neighbours, t - 1)
        distances = shape_distances(points.cpu().numpy(), points.cpu().numpy())  # (target, shot)
        order = [[int(j) for j in distances[i].argsort() if j != i][:near] for i in range(t)]
        pairs = [(i, j) for i in range(t) for j in order[i]]
        if len(pairs) > max_pairs:
            pairs = [pairs[k] for k in sorted(rng.choice(len(pairs), max_pairs, replace=False))]
        tgt = torch.tensor([i for i, _ in pairs])
        src = torch.tensor([j for _, j in pairs])
        warped = torch.cat([warp_fn(images[src[k:k + 16]], points[src[k:k + 16]], points[tgt[k:k + 16]])
                            for k in range(0, len(pairs), 16)])
        return tgt, warped.cpu()
    size = images.shape[-1]
    src_img, src_pts = _jitter(images[0], points[0], size, rng, jitters)
    tgt = torch.zeros(jitters, dtype=torch.long)
    warped = warp_fn(src_img, src_pts, points[0].expand(jitters, -1, -1))
    return tgt, warped.cpu()


def _jitter(image: torch.Tensor, points: torch.Tensor, size: int, rng: np.random.Generator,
            n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n copies of (image, points) under random similarity transforms about the crop centre:
    rotation +-6 degrees, scale +-6 %, shift +-4 % of the crop."""
    angle = np.deg2rad(rng.uniform(-6, 6, n))
    scale = rng.uniform(0.94, 1.06, n)
    shift = rng.uniform(-0.04, 0.04, (n, 2)) * size
    c = (size - 1) / 2.0
    out_imgs, out_pts = [], []
    for a, s, (tx, ty) in zip(angle, scale, shift):
        fwd = np.array([[s * np.cos(a), -s * np.sin(a)], [s * np.sin(a), s * np.cos(a)]])
        inv = np.linalg.inv(fwd)
        # Output pixel p samples the input at inv (p - c - t) + c.
        theta = torch.tensor(np.concatenate([inv, (inv @ -np.array([tx, ty]))[:, None] / c], 1), dtype=torch.float32)
        grid = F.affine_grid(theta[None].to(image.device), [1, 3, size, size], align_corners=True)
        out_imgs.append(F.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="border",
                                      align_corners=True))
        p = (points.double().cpu().numpy() - c) @ fwd.T + c + np.array([tx, ty])
        out_pts.append(torch.from_numpy(p).float().to(points.device))
    return torch.cat(out_imgs), torch.stack(out_pts)
