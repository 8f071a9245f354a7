"""Pure measurements on iBUG-68 landmarks, normalized by face size so they compare across people.

The rest of the pipeline (motion, evaluation, tests) uses these to ask "is the mouth open?" and
"are the eyes open?" without caring about resolution.
"""

from __future__ import annotations

import numpy as np

# Points that follow the head but barely move when a person talks: the eye corners and the
# nose (bridge + bottom), plus the jaw's top ends at the temples (0, 16). Measured on real
# talking clips (see tests/test_motion.py and the report): adding the temples keeps the
# fit's scale stable under head turns, while any lip or lower-jaw point makes the "head"
# move with the mouth.
STABLE_POINTS = np.array([0, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45], np.int64)
# Upper/lower inner-lip pairs (61-67, 62-66, 63-65) and eyelid pairs per eye (37-41, 38-40 / 43-47, 44-46).
_INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
_EYE_PAIRS = (((37, 41), (38, 40)), ((43, 47), (44, 46)))


def inter_ocular(points: np.ndarray) -> np.ndarray:
    """Distance between the two eye centres (mean of 36-41 and of 42-47); (...,) for (..., 68, 2)."""
    p = np.asarray(points, dtype=np.float64)
    left = p[..., 36:42, :].mean(axis=-2)
    right = p[..., 42:48, :].mean(axis=-2)
    return np.linalg.norm(right - left, axis=-1)


def eye_centres(points: np.ndarray) -> np.ndarray:
    """Centre of each eye's six points: (2, 2) for (68, 2), (N, 2, 2) for (N, 68, 2), float32.

    The fallback pupil position when an eye's iris cannot be located.
    """
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 36:42, :].mean(axis=-2), p[..., 42:48, :].mean(axis=-2)], axis=-2).astype(np.float32)


def mouth_opening(points: np.ndarray) -> float | np.ndarray:
    """Inner-lip gap (mean of 61↔67, 62↔66, 63↔65) divided by the inter-ocular distance.

    About 0 for a closed mouth, ~0.3-0.6 wide open. Accepts (68, 2) (returns a float) or a
    stack (N, 68, 2) (returns (N,)).
    """
    p = np.asarray(points, dtype=np.float64)
    gap = np.mean([np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1) for a, b in _INNER_LIP_PAIRS], axis=0)
    out = gap / np.maximum(inter_ocular(p), 1e-6)
    return float(out) if np.ndim(out) == 0 else out


def eye_opening(points: np.ndarray) -> np.ndarray:
    """Eyelid gap of each eye (mean of the two vertical pairs) / inter-ocular distance: (2,) or (N, 2).

    Index 0 is the eye of points 36-41, index 1 the eye of points 42-47 (like `Face.pupils`).
    """
    p = np.asarray(points, dtype=np.float64)
    gaps = [
        np.mean([np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1) for a, b in eye], axis=0)
        for eye in _EYE_PAIRS
    ]
    return np.stack(gaps, axis=-1) / np.maximum(inter_ocular(p), 1e-6)[..., None]
