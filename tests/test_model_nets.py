"""Networks and losses: shapes per preset, the hybrid identity at init, gradients, overfitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from talkanim.model import (LossWeights, ModelConfig, TalkingHeadModel, content_loss, content_terms,
                            d_hinge_loss, draw_sketch, feature_matching_loss, g_adversarial_loss,
                            matching_loss, preset)
from talkanim.model.config import PRESETS


def _points(b: int, size: int) -> torch.Tensor:
    return torch.rand(b, 68, 2) * size * 0.6 + size * 0.2


def test_config_roundtrip_and_presets():
    for name in PRESETS:
        for mode in ("paper", "hybrid"):
            c = preset(name, mode)
            assert c.mode == mode and ModelConfig.from_dict(c.to_dict()) == c
    assert preset("paper", "paper").image_size == 256 and preset("paper", "paper").embed_dim == 512
    with pytest.raises(ValueError):
        preset("huge", "paper")
    with pytest.raises(ValueError):
        ModelConfig(image_size=100)
    # files written before the option existed keep their unnormalized embedder
    old = {k: v for k, v in preset("tiny", "hybrid").to_dict().items() if k != "normalize_embedding"}
    assert not ModelConfig.from_dict(old).normalize_embedding
    assert all(p.normalize_embedding for p in PRESETS.values())


def test_embeddings_have_unit_rms_whatever_the_input():
    torch.manual_seed(0)
    m = TalkingHeadModel(preset("tiny", "hybrid"), discriminator=False)
    for scale in (0.1, 1.0, 10.0):
        e = m.embedder(torch.rand(3, 3, 128, 128) * scale, torch.rand(3, 3, 128, 128))
        assert torch.allclose(e.pow(2).mean(dim=1), torch.ones(3), atol=1e-4)


@pytest.mark.parametrize("mode", ["paper", "hybrid"])
def test_tiny_shapes(mode):
    torch.manual_seed(0)
    c = preset("tiny", mode)
    m = TalkingHeadModel(c, num_videos=5)
    b, t, s = 2, 2, c.image_size
    imgs, sk = torch.rand(b, t, 3, s, s), torch.rand(b, t, 3, s, s)
    e = m.embedder.embed_shots(imgs, sk)
    assert e.shape == (b, c.embed_dim)
    psi = m.generator.project(e)
    assert psi.shape == (b, m.generator.num_adain_params)
    out = m.generator(sk[:, 0], psi, imgs[:, 0] if mode == "hybrid" else None)
    assert out.shape == (b, 3, s, s) and 0 <= out.min() and out.max() <= 1
    score, feats = m.discriminator(out, sk[:, 0], torch.tensor([0, 4]))
    assert score.shape == (b,) and len(feats) >= c.num_down
    score_p, _ = m.discriminator(out, sk[:, 0], person_vector=e)
    assert score_p.shape == (b,)


def test_paper_preset_forward_batch1():
    c = preset("paper", "hybrid")
    m = TalkingHeadModel(c, num_videos=1, discriminator=False).eval()
    n = sum(p.numel() for p in m.parameters())
    assert 20e6 < n < 200e6, n
    s = c.image_size
    x, pts = torch.rand(1, 3, s, s), _points(1, s)
    with torch.no_grad():  # ~1 s on 2 CPU cores
        e = m.embed(x, pts)
        out = m.generate(pts, None, m.generator.project(e[None])[0], x)
    assert e.shape == (512,) and out.shape == (1, 3, 256, 256)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast(dtype):
    c = preset("tiny", "hybrid")
    m = TalkingHeadModel(c, num_videos=2).cuda()
    s = c.image_size
    x, pts = torch.rand(2, 3, s, s, device="cuda"), _points(2, s).cuda()
    with torch.autocast("cuda", dtype=dtype):
        e = m.embed(x, pts)
        out = m.generate(pts, None, m.generator.project(e[None])[0], x)
        score, _ = m.discriminator(out, m.sketch(pts), torch.tensor([0, 1], device="cuda"))
        loss = content_loss(out, x, pts) - score.mean()
    loss.backward()
    assert (out - x).abs().max() < 1e-6 and torch.isfinite(loss)


def test_hybrid_is_identity_on_warp_at_init():
    torch.manual_seed(0)
    c = preset("tiny", "hybrid")
    m = TalkingHeadModel(c, num_videos=2)
    s = c.image_size
    warped = torch.rand(3, 3, s, s)
    pts = _points(3, s)
    e = m.embed(torch.rand(2, 3, s, s), pts[:2])
    psi = m.generator.project(e[None])[0]
    with torch.no_grad():
        out = m.generate(pts, None, psi, warped)
        assert (out - warped).abs().max() < 1e-6
        # Through the renderer hook at another working size (256 px): still the identity.
        big = torch.rand(2, 3, 2 * s, 2 * s)
        refined = m.refiner(psi)(big, _points(2, 2 * s), None)
        assert refined.shape == big.shape and (refined - big).abs().max() < 1e-6
        # Free of the region cap too.
        out_free = m.generator(draw_sketch(pts, s), psi.expand(3, -1), warped)
        assert (out_free - warped).abs().max() < 1e-6


def test_loss_values_on_known_inputs():
    assert d_hinge_loss(torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.0])).item() == pytest.approx(1.0)
    assert d_hinge_loss(torch.tensor([1.5]), torch.tensor([-1.5])).item() == 0.0
    assert g_adversarial_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)
    real = [torch.zeros(2, 4, 8, 8), torch.zeros(2, 8, 4, 4)]
    fake = [torch.ones(2, 4, 8, 8), torch.full((2, 8, 4, 4), 0.5)]
    assert feature_matching_loss(real, fake).item() == pytest.approx(1.5)
    assert matching_loss(torch.tensor([[1.0, -2.0]]), torch.zeros(1, 2)).item() == pytest.approx(1.5)
    w = LossWeights()
    assert (w.fm, w.mch, w.adv) == (10.0, 80.0, 1.0)
    img = torch.rand(2, 3, 128, 128)
    pts = _points(2, 128)
    terms = content_terms(img, img.clone(), pts)
    assert terms["l1"] == 0 and terms["region"] == 0 and abs(terms["msssim"]) < 1e-5
    noisy = (img + 0.2 * torch.randn_like(img)).clamp(0, 1)
    worse = content_terms(noisy, img, pts)
    assert worse["msssim"] > 0.05 and worse["l1"] > 0.05 and worse["region"] > 0.05
    for size in (32, 64, 256):  # MS-SSIM picks a window/levels that fit each size
        a = torch.rand(1, 3, size, size)
        assert torch.isfinite(content_loss(a, a * 0.5, _points(1, size)))


def test_gradients_reach_E_G_P_and_D():
    torch.manual_seed(0)
    c = ModelConfig(mode="hybrid", image_size=32, base_channels=8, max_channels=32, embed_dim=32,
                    num_res_blocks=1, attention_at=8, blend_region="full")
    m = TalkingHeadModel(c, num_videos=4)
    s, b, t = 32, 2, 2
    pts = _points(b, s)
    shots, shot_sk = torch.rand(b, t, 3, s, s), torch.rand(b, t, 3, s, s)
    target, warped = torch.rand(b, 3, s, s), torch.rand(b, 3, s, s)
    idx = torch.tensor([1, 3])
    sk = draw_sketch(pts, s)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    # Step 1: only G's zero-initialized head gets a gradient (that is the identity start);
    # after one step the gradient reaches the whole generator.
    for _ in range(2):
        m.zero_grad()
        e = m.embedder.embed_shots(shots, shot_sk)
        fake = m.generator(sk, m.generator.project(e), warped)
        fake_score, fake_feats = m.discriminator(fake, sk, idx)
        real_score, real_feats = m.discriminator(target, sk, idx)
        loss_g = (content_loss(fake, target, pts) + g_adversarial_loss(fake_score)
                  + 10 * feature_matching_loss(real_feats, fake_feats)
                  + 80 * matching_loss(e, m.discriminator.W[idx]))
        loss_g.backward()
        if not m.generator.down[0].conv1.parametrizations.weight.original.grad.abs().sum():
            opt.step()

    def nonzero(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert nonzero(m.embedder) and nonzero(m.generator.down) and nonzero(m.generator.res)
    assert m.generator.projection.parametrizations.weight.original.grad.abs().sum() > 0
    assert m.generator.head.weight.grad.abs().sum() > 0
    assert m.discriminator.W.grad[idx].abs().sum() > 0 and m.discriminator.W.grad[0].abs().sum() == 0
    m.zero_grad()
    d_hinge_loss(m.discriminator(target, sk, idx)[0], m.discriminator(fake.detach(), sk, idx)[0]).backward()
    assert nonzero(m.discriminator.trunk) and m.discriminator.w0.grad.abs().sum() > 0


def test_autocast_forward():
    c = ModelConfig(mode="hybrid", image_size=32, base_channels=8, max_channels=16, embed_dim=16,
                    num_res_blocks=1, attention_at=8)
    m = TalkingHeadModel(c, num_videos=2)
    x, pts = torch.rand(2, 3, 32, 32), _points(2, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        e = m.embed(x, pts)
        out = m.generate(pts, None, m.generator.project(e[None])[0], x)
        score, _ = m.discriminator(out, m.sketch(pts), torch.tensor([0, 1]))
    assert torch.isfinite(out).all() and torch.isfinite(score.float()).all()


def test_overfits_one_real_crop(astronaut, astronaut_face):
    """A few Adam steps of E+G on one (image, sketch) pair lower the content loss."""
    from talkanim.render.crop import crop_image, face_crop_box

    pts = astronaut_face.points
    size = 64
    box = face_crop_box(pts, 1.8)
    crop = crop_image(astronaut, box, size)
    image = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    points = torch.from_numpy(box.to_crop(pts, size))[None]
    torch.manual_seed(0)
    c = ModelConfig(mode="paper", image_size=size, base_channels=8, max_channels=32, embed_dim=32,
                    num_res_blocks=1, attention_at=8)
    m = TalkingHeadModel(c, num_videos=1, discriminator=False)
    sketch = draw_sketch(points, size)
    opt = torch.optim.Adam([*m.embedder.parameters(), *m.generator.parameters()], lr=3e-3)
    losses = []
    for _ in range(20):
        fake = m.generator(sketch, m.generator.project(m.embedder(image, sketch)))
        loss = content_loss(fake, image, points)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_perceptual_loss_only_from_a_local_file(tmp_path):
    from torch import nn

    from talkanim.errors import WeightsError
    from talkanim.model.losses import _VGG19, PerceptualLoss
    from talkanim.model.weights import save_weights

    with pytest.raises(WeightsError, match="not found"):
        PerceptualLoss(str(tmp_path / "vgg19.safetensors"))
    layers, cin = [], 3  # a randomly initialized VGG19 in torchvision's key layout
    for v in _VGG19:
        layers += [nn.MaxPool2d(2)] if v == "M" else [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
        cin = v if v != "M" else cin
    state = {f"features.{k}": v for k, v in nn.Sequential(*layers).state_dict().items()}
    sha = save_weights(tmp_path / "vgg19.safetensors", state, {})
    vgg = PerceptualLoss(str(tmp_path / "vgg19.safetensors"), sha)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert vgg(a, a).item() == 0 and vgg(a, b).item() > 0
    assert "vgg" in content_terms(a, b, perceptual=vgg)
