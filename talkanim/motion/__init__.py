"""Pose/expression decomposition and retargeting of driver landmarks (pure numpy)."""

from talkanim.motion.geometry import STABLE_POINTS, apply_transform, fit_similarities, fit_similarity, invert
from talkanim.motion.retarget import MotionTrack, retarget, transfer_pupils
from talkanim.motion.shots import blend_weights, nearest_shots, normalize_shape, shot_weights

__all__ = ["STABLE_POINTS", "MotionTrack", "apply_transform", "blend_weights", "fit_similarities", "fit_similarity", "invert", "nearest_shots",
           "normalize_shape", "retarget", "shot_weights", "transfer_pupils"]
