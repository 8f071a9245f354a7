"""The neural model (Zakharov et al. 2019 and our hybrid): embedder, generator, discriminator,
losses, landmark sketches and safe weights files."""

from .config import PRESETS, ModelConfig, preset
from .discriminator import Discriminator
from .embedder import Embedder
from .generator import Generator
from .losses import (LossWeights, PerceptualLoss, content_loss, content_terms, d_hinge_loss,
                     feature_matching_loss, g_adversarial_loss, matching_loss)
from .sketch import LANDMARK_PARTS, draw_sketch, region_mask
from .talking_head import TalkingHeadModel
from .weights import load_weights, save_weights

__all__ = ["PRESETS", "ModelConfig", "preset", "Discriminator", "Embedder", "Generator", "LossWeights",
           "PerceptualLoss", "content_loss", "content_terms", "d_hinge_loss", "feature_matching_loss",
           "g_adversarial_loss", "matching_loss", "LANDMARK_PARTS", "draw_sketch", "region_mask",
           "TalkingHeadModel", "load_weights", "save_weights"]
