"""Meta-learning (`talkanim train`): the paper's episodic training of E, G and D.

One step = one batch of episodes (video i, target frame, T other frames of video i):
    e_i   = mean_T E(shot, sketch(shot))                      identity from the T shots
    x_hat = G(sketch(target), P e_i [, source warped to the target landmarks])
    G/E step:  content(x_hat, x) + adv * -D(x_hat) + fm * FM(D feats) + mch * |e_i - sg(W_i)|
    D step:    hinge(D(x), D(sg(x_hat))) + mch * |sg(e_i) - W_i|
The matching loss L_MCH trains both e_i and W_i as in the paper; its two halves sit in the two
optimizers' losses so each network's graph (and DDP wrapper) stays its own.

Determinism: every step's episodes and global RNG are derived from (seed, step, rank), and a
checkpoint holds weights, optimizer moments, EMA and RNG states, so a resumed run reproduces an
uninterrupted one bit for bit on the CPU.

Also runnable without the CLI, e.g. under torchrun:
    torchrun --nproc-per-node 2 -m talkanim.train.meta --dataset DATA --out OUT --max-steps 100
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from talkanim.errors import OutputError
from talkanim.io.atomic import atomic_output
from talkanim.model.config import ModelConfig, preset
from talkanim.model.losses import (LossWeights, content_terms, d_hinge_loss, feature_matching_loss,
                                   g_adversarial_loss, matching_loss)
from talkanim.model.sketch import region_mask
from talkanim.model.talking_head import TalkingHeadModel
from talkanim.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from talkanim.train.config import TrainConfig
from talkanim.train.dataset import EpisodeBatch, EpisodeDataset, default_warp_fn, step_seed
from talkanim.train.distributed import (DistEnv, all_reduce_mean, any_rank, barrier, cleanup_distributed,
                                        parameter_checksum, setup_distributed)

# progress(steps done, steps total, latest logged metrics)
Progress = Callable[[int, int, dict[str, float]], None]
WarpFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

LOG_NAME = "train_log.jsonl"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class TrainResult:
    """What a `train` call did (on this rank; only rank 0 wrote files)."""

    out_dir: Path
    weights: Path | None  # the exported model (E, G or its EMA, D), rank 0 only
    checkpoint: Path | None  # the last complete checkpoint
    step: int  # steps done in total (resumed runs count from their start)
    steps_run: int  # steps done by this call
    seconds: float
    steps_per_s: float
    stopped: str  # "max_steps" or "time_budget"
    held_start: dict[str, float] | None  # held-frame reconstruction at this call's start (rank 0)
    held_end: dict[str, float] | None  # ... and at its end; see `held_reconstruction`
    last_metrics: dict[str, float] = field(default_factory=dict)
    checksum: str = ""  # digest of this rank's parameters (replicas must agree)


def model_config_for(config: TrainConfig) -> ModelConfig:
    """The model shape a TrainConfig asks for (preset + mode, optional smaller image_size)."""
    mc = preset(config.preset, config.mode)
    if config.image_size and config.image_size != mc.image_size:
        # Attention stays at the same relative depth (its cost grows with the pixel count squared).
        att = max(4, mc.attention_at * config.image_size // mc.image_size)
        mc = replace(mc, image_size=config.image_size, attention_at=min(att, config.image_size // 2))
    return mc


def train(config: TrainConfig, *, progress: Progress | None = None, warp_fn: WarpFn | None = None) -> TrainResult:
    """Meta-learn E, G, D on a prepared dataset (see the module docstring).

    Under torchrun (WORLD_SIZE > 1) each process joins the group, trains its slice of every
    batch under DistributedDataParallel, and only rank 0 writes the log, checkpoints and weights.
    Ctrl-C (KeyboardInterrupt) propagates; checkpoints are atomic, so the last complete one is
    always intact and `resume=True` continues from it.
    """
    env = setup_distributed(config.device)
    try:
        return _Trainer(config, env, progress, warp_fn or default_warp_fn()).run()
    finally:
        cleanup_distributed(env)


class _GenerateStep(nn.Module):
    """E and G as one module, so DistributedDataParallel syncs their gradients together."""

    def __init__(self, model: TalkingHeadModel):
        super().__init__()
        self.embedder, self.generator = model.embedder, model.generator

    def forward(self, shots, shot_sketches, sketch, warped, region):
        e = self.embedder.embed_shots(shots, shot_sketches)
        return self.generator(sketch, self.generator.project(e), warped, region), e


class _Trainer:
    def __init__(self, config: TrainConfig, env: DistEnv, progress: Progress | None, warp_fn: WarpFn):
        self.cfg, self.env, self.progress, self.warp_fn = config, env, progress, warp_fn
        self.out = Path(config.out_dir)
        self.ckpt_root = self.out / "checkpoints"
        self.mc = model_config_for(config)
        self.device = env.device
        self.amp = bool(config.amp and self.device.type == "cuda")
        self.data = EpisodeDataset(config.dataset, "train", image_size=self.mc.image_size,
                                   held_frames=config.held_frames_per_video)

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.model = TalkingHeadModel(self.mc, num_videos=self.data.num_train_videos).to(self.device)
        self.ema = copy.deepcopy(self.model.generator).requires_grad_(False) if config.ema else None
        gen_params = [*self.model.embedder.parameters(), *self.model.generator.parameters()]
        self.opt_g = torch.optim.Adam(gen_params, lr=config.lr_g, betas=tuple(config.betas))
        self.opt_d = torch.optim.Adam(self.model.discriminator.parameters(), lr=config.lr_d, betas=tuple(config.betas))

        self.step = 0
        self.elapsed_before = 0.0  # training seconds of earlier (resumed) runs
        existing = latest_checkpoint(self.ckpt_root)
        if existing is not None and not config.resume:
            raise OutputError(f"{self.out} already holds a training run ({existing.name}); "
                              "resume it or choose another output folder")
        if existing is not None:
            doc = load_checkpoint(existing, modules=self._modules(), optimizers=self._optimizers(),
                                  device=self.device)
            self.step = int(doc["step"])
            self.elapsed_before = float(doc["state"].get("seconds", 0.0))
        self.last_checkpoint = existing

        gen = _GenerateStep(self.model)
        if env.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.gen = DDP(gen, device_ids=ids)
            self.disc = DDP(self.model.discriminator, device_ids=ids)
        else:
            self.gen, self.disc = gen, self.model.discriminator

    def _modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, **({"ema_generator": self.ema} if self.ema is not None else {})}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    # ------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg, env = self.cfg, self.env
        if env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._trim_log(self.step)
        held = self.data.held_episodes(cfg.shots, cfg.eval_videos)
        held_warped = self._warp(held)
        held_start = self._held(held, held_warped) if env.is_main else None
        start_step, t0 = self.step, time.perf_counter()
        metrics: dict[str, float] = {}
        stopped = "max_steps"
        with (open(self.out / LOG_NAME, "a") if env.is_main else contextlib.nullcontext()) as log:
            while self.step < cfg.max_steps:
                raw = self._train_step(self.step)
                self.step += 1
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    metrics = self._reduce(raw)
                    if log is not None:
                        record = {"step": self.step, **metrics,
                                  "seconds": round(self.elapsed_before + time.perf_counter() - t0, 3)}
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                if cfg.eval_every and self.step % cfg.eval_every == 0 and env.is_main and log is not None:
                    log.write(json.dumps({"step": self.step, "held": self._held(held, held_warped)}) + "\n")
                if self.progress is not None:
                    self.progress(self.step, cfg.max_steps, metrics)
                over = cfg.time_budget_s is not None and time.perf_counter() - t0 >= cfg.time_budget_s
                if cfg.time_budget_s is not None and any_rank(over, env):
                    stopped = "time_budget"
                    break
                if self.step % cfg.checkpoint_every == 0 and self.step < cfg.max_steps:
                    self._checkpoint(time.perf_counter() - t0)
        seconds = time.perf_counter() - t0
        if self.step > start_step or self.last_checkpoint is None:
            self._checkpoint(seconds)
        held_end = self._held(held, held_warped) if env.is_main else None
        weights = self._export() if env.is_main else None
        barrier(env)
        run = self.step - start_step
        return TrainResult(out_dir=self.out, weights=weights, checkpoint=self.last_checkpoint, step=self.step,
                           steps_run=run, seconds=seconds, steps_per_s=run / seconds if seconds > 0 else 0.0,
                           stopped=stopped, held_start=held_start, held_end=held_end, last_metrics=metrics,
                           checksum=parameter_checksum(self.model))

    def _train_step(self, step: int) -> dict[str, torch.Tensor]:
        cfg, env, w = self.cfg, self.env, self.cfg.loss
        # Anything stochastic inside the networks draws from a stream fixed by (seed, step, rank).
        torch.manual_seed(step_seed(cfg.seed, step, 1 + env.rank))
        b = self.data.sample_episodes(step, cfg.batch_size, cfg.shots, seed=cfg.seed, rank=env.rank,
                                      world_size=env.world_size).to(self.device)
        warped = self._warp(b)
        region = self._region(b)
        d = self.model.discriminator
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)

        # --- E and G -------------------------------------------------------------------
        d.requires_grad_(False)  # D is only a critic here; its own step follows
        zero = torch.zeros((), device=self.device)
        with autocast:
            fake, e = self.gen(b.shots, b.shot_sketches, b.target_sketch, warped, region)
            terms = content_terms(fake.float(), b.target, b.target_points)
            content = w.l1 * terms["l1"] + w.msssim * terms["msssim"] + w.region * terms["region"]
            adv = fm = mch = zero
            if cfg.adversarial:
                fake_score, fake_feats = d(fake, b.target_sketch, b.video_index)
                with torch.no_grad():
                    _, real_feats = d(b.target, b.target_sketch, b.video_index)
                adv = g_adversarial_loss(fake_score.float())
                fm = feature_matching_loss(real_feats, fake_feats)
                mch = matching_loss(e, d.W[b.video_index].detach())
            loss_g = content + w.adv * adv + w.fm * fm + w.mch * mch
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.gen.parameters(), cfg.grad_clip)
        self.opt_g.step()
        d.requires_grad_(True)
        if self.ema is not None:
            self._update_ema()
        out = {"loss_g": loss_g.detach(), "l1": terms["l1"].detach(), "msssim": terms["msssim"].detach(),
               "region": terms["region"].detach()}
        if not cfg.adversarial:
            return out

        # --- D: real and fake in one forward, so DDP sees one graph per step ----------------
        with autocast:
            scores, _ = self.disc(torch.cat([b.target, fake.detach()]), torch.cat([b.target_sketch] * 2),
                                  torch.cat([b.video_index] * 2))
            real_score, fake_score_d = scores.float().chunk(2)
            loss_d = d_hinge_loss(real_score, fake_score_d) + w.mch * matching_loss(e.detach(), d.W[b.video_index])
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), cfg.grad_clip)
        self.opt_d.step()

        return {**out, "adv": adv.detach(), "fm": fm.detach(), "mch": mch.detach(), "loss_d": loss_d.detach(),
                "d_real": real_score.mean().detach(), "d_fake": fake_score_d.mean().detach()}

    def _warp(self, b: EpisodeBatch) -> torch.Tensor | None:
        if self.mc.mode != "hybrid":
            return None
        return self.warp_fn(b.source, b.source_points, b.target_points).to(self.device)

    def _region(self, b: EpisodeBatch) -> torch.Tensor | None:
        if self.mc.mode == "hybrid" and self.mc.blend_region == "mouth_eyes":
            return region_mask(b.target_points, self.mc.image_size)
        return None

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.cfg.ema_decay
        for pe, p in zip(self.ema.parameters(), self.model.generator.parameters()):
            pe.lerp_(p, 1.0 - decay)
        for be, bb in zip(self.ema.buffers(), self.model.generator.buffers()):
            be.copy_(bb)

    def _reduce(self, raw: dict[str, torch.Tensor]) -> dict[str, float]:
        keys = sorted(raw)
        vec = all_reduce_mean(torch.stack([raw[k].float() for k in keys]), self.env)
        return {k: float(v) for k, v in zip(keys, vec.tolist())}

    @torch.no_grad()
    def _held(self, held: EpisodeBatch, warped: torch.Tensor | None) -> dict[str, float]:
        generator = self.ema if self.ema is not None else self.model.generator
        return held_reconstruction(self.model, held, warped, generator=generator, chunk=16)

    def _checkpoint(self, seconds: float) -> None:
        if self.env.is_main:
            state = {"seconds": self.elapsed_before + seconds, "config": self.cfg.to_dict(),
                     "model_config": self.mc.to_dict(), "num_videos": self.data.num_train_videos}
            self.last_checkpoint = save_checkpoint(self.ckpt_root, self.step, modules=self._modules(),
                                                   optimizers=self._optimizers(), state=state,
                                                   keep=self.cfg.keep_checkpoints)
        barrier(self.env)

    def _export(self) -> Path:
        """model.safetensors: the model as animate loads it (EMA generator when kept)."""
        model = self.model
        if self.ema is not None:
            model = copy.deepcopy(self.model)
            model.generator.load_state_dict(self.ema.state_dict())
        path = self.out / WEIGHTS_NAME
        model.save(path, extra_metadata={"train_steps": str(self.step), "dataset": str(self.cfg.dataset)})
        return path

    def _trim_log(self, step: int) -> None:
        """Drop log records past `step` (from a run interrupted after its last checkpoint)."""
        path = self.out / LOG_NAME
        if not path.exists():
            return
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        if len(keep) != len(lines):
            with atomic_output(path) as tmp:
                tmp.write_text("".join(ln + "\n" for ln in keep))


@torch.no_grad()
def held_reconstruction(model: TalkingHeadModel, batch: EpisodeBatch, warped: torch.Tensor | None, *,
                        generator: nn.Module | None = None, chunk: int = 16) -> dict[str, float]:
    """Reconstruction error of G on a batch of episodes, each embedded from its own shots
    (feed-forward, no fine-tuning): {"l1": whole crop, "region_l1": mouth and eye regions}.

    Runs in eval mode (no spectral-norm power iteration), so measuring never changes weights.
    """
    generator = generator or model.generator
    was_training = model.training
    model.eval()
    generator.eval()
    dev = model.device
    l1 = reg = 0.0
    count = 0
    try:
        for lo in range(0, len(batch.target), chunk):
            sl = slice(lo, lo + chunk)
            points = batch.target_points[sl].to(dev)
            e = model.embedder.embed_shots(batch.shots[sl].to(dev), batch.shot_sketches[sl].to(dev))
            mask = region_mask(points, model.config.image_size)
            region = mask if model.config.mode == "hybrid" and model.config.blend_region == "mouth_eyes" else None
            w = None if warped is None else warped[sl].to(dev)
            fake = generator(batch.target_sketch[sl].to(dev), generator.project(e), w, region)
            err = (fake.float() - batch.target[sl].to(dev)).abs()
            l1 += float(err.mean(dim=(1, 2, 3)).sum())
            reg += float(((err * mask).sum(dim=(1, 2, 3)) / (3 * mask.sum(dim=(1, 2, 3))).clamp_min(1)).sum())
            count += fake.shape[0]
    finally:
        model.train(was_training)
        generator.train(was_training)
    return {"l1": l1 / max(count, 1), "region_l1": reg / max(count, 1)}


def _parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m talkanim.train.meta", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="folder written by `talkanim prepare`")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, log, model.safetensors")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--mode", default="hybrid", choices=["hybrid", "paper"])
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr-g", type=float, default=5e-5)
    p.add_argument("--lr-d", type=float, default=2e-4)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--time-budget", type=float, default=None, help="seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--ema", action="store_true")
    p.add_argument("--content-only", action="store_true", help="no discriminator: content losses only")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--held-frames", type=int, default=4)
    p.add_argument("--checksum-dir", type=Path, default=None,
                   help="debug: every rank writes its parameter digest to DIR/rank<R>.txt")
    a = p.parse_args(argv)
    cfg = TrainConfig(dataset=a.dataset, out_dir=a.out, preset=a.preset, mode=a.mode, image_size=a.image_size,
                      shots=a.shots, batch_size=a.batch_size, lr_g=a.lr_g, lr_d=a.lr_d, max_steps=a.max_steps,
                      time_budget_s=a.time_budget, seed=a.seed, checkpoint_every=a.checkpoint_every,
                      resume=a.resume, device=a.device, amp=not a.no_amp,
                      grad_clip=a.grad_clip if a.grad_clip > 0 else None, ema=a.ema, log_every=a.log_every,
                      adversarial=not a.content_only,
                      held_frames_per_video=a.held_frames)
    return cfg, a


def main(argv: list[str] | None = None) -> None:
    import os

    cfg, args = _parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))

    def report(step: int, total: int, metrics: dict[str, float]) -> None:
        if rank == 0 and metrics and (step % cfg.log_every == 0 or step == total):
            print(f"step {step}/{total} " + " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())), flush=True)

    result = train(cfg, progress=report)
    if args.checksum_dir is not None:
        args.checksum_dir.mkdir(parents=True, exist_ok=True)
        (args.checksum_dir / f"rank{rank}.txt").write_text(result.checksum + "\n")
    if rank == 0:
        print(json.dumps({"step": result.step, "steps_per_s": round(result.steps_per_s, 3), "stopped": result.stopped,
                          "held_start": result.held_start, "held_end": result.held_end,
                          "weights": str(result.weights)}), flush=True)


if __name__ == "__main__":
    main()
