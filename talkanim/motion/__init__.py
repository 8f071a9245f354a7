"""Pose/expression decomposition and retargeting of driver landmarks (pure numpy)."""

from talkanim.motion.geometry import STABLE_POINTS, apply_transform, fit_similarity, invert
from talkanim.motion.retarget import MotionTrack, retarget, transfer_pupils

__all__ = ["STABLE_POINTS", "MotionTrack", "apply_transform", "fit_similarity", "invert",
           "retarget", "transfer_pupils"]
