"""FAN backend: face-alignment's 2D-FAN-4 network for the 68 points (GPU-batched when CUDA is there).

Face *boxes* come from our dlib detector (face-alignment's own S3FD detector would need another
85 MB download); FAN then fits the points inside each box. face-alignment uses dlib boxes as
they are with its reference scale of 195 px, so the HOG box convention carries over.

FAN's weights download on first use into the torch hub cache. We look for the file first and
fail at once with a clear message when it is missing and we are offline, instead of letting
face-alignment start a download that hangs or tracebacks.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np

from ..devices import resolve_device
from ..errors import BackendUnavailableError
from .dlib_backend import DlibDetector
from .pupils import locate_pupils
from .types import Face

OFFLINE_MESSAGE = ("FAN weights are not downloaded and there is no internet; "
                   "use --landmarks mesh or --landmarks dlib (both offline)")
# The URL face-alignment 1.x loads 2D-FAN-4 from (face_alignment.api.models_urls['2DFAN-4']);
# used only when that module attribute cannot be read.
_FALLBACK_URL = "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar"


def _weights_url() -> str:
    try:
        from face_alignment import api

        return api.models_urls["2DFAN-4"]
    except Exception:  # noqa: BLE001 - any layout change: fall back to the known URL
        return _FALLBACK_URL


def weights_path() -> Path:
    """Where face-alignment keeps (or would download) the 2D-FAN-4 weights: <torch hub>/checkpoints/."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(_weights_url()).path)


def weights_present() -> bool:
    """True when the FAN weights are already in the torch hub cache (no download needed)."""
    try:
        import face_alignment  # noqa: F401
    except ImportError:
        return False
    return weights_path().is_file()


def _online(url: str, timeout: float = 2.0) -> bool:
    """Can we open a TCP connection to the weights' host? Bounded: offline must fail fast.

    Runs in a daemon thread because a DNS lookup ignores socket timeouts and can hang.
    """
    host = urlparse(url).hostname or ""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


class FanDetector:
    """face-alignment's FAN for landmarks, dlib's detector for face boxes."""

    name = "fan"

    def __init__(self, *, device: str = "auto", detect_max_side: int = 640, batch_size: int = 32,
                 log: Callable[[str], None] | None = None, allow_download: bool = True) -> None:
        try:
            import face_alignment
        except ImportError as exc:
            raise BackendUnavailableError(
                "the fan landmark backend needs face-alignment (pip install face-alignment); "
                "use --landmarks mesh or --landmarks dlib (both offline)"
            ) from exc
        if not weights_present() and not (allow_download and _online(_weights_url())):
            raise BackendUnavailableError(OFFLINE_MESSAGE)
        self.device = str(resolve_device(device))
        self.batch_size = int(batch_size)
        # 'folder' is face-alignment's no-op detector: it loads no weights, and we always pass
        # boxes ourselves. torch.compile only pays off on GPU (it needs a compiler and minutes on CPU).
        self._fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D,
            device=self.device,
            face_detector="folder",
            flip_input=False,
            compile=self.device.startswith("cuda"),
            max_batch_size=self.batch_size,
        )
        self._boxes = DlibDetector(detect_max_side=detect_max_side, log=log)
        self.detect_max_side = detect_max_side
        self._log = log

    def fit(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68 landmarks (68, 2) float32 from FAN inside `box` (x0, y0, x1, y1)."""
        pts = self._fa.get_landmarks_from_image(np.ascontiguousarray(image), detected_faces=[np.asarray(box, np.float32)])
        return np.asarray(pts[0][:, :2], dtype=np.float32)

    def fit_batch(self, images: list[np.ndarray], boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
        """FAN on many (image, box) pairs in GPU batches of `batch_size`: (N, 68, 2) float32."""
        import torch
        from face_alignment.utils import CENTER_Y_OFFSET, REFERENCE_SCALE, crop, get_preds_fromhm

        out = np.zeros((len(images), 68, 2), np.float32)
        net = self._fa.face_alignment_net
        for start in range(0, len(images), self.batch_size):
            crops, geo = [], []
            for img, d in zip(images[start:start + self.batch_size], boxes[start:start + self.batch_size]):
                center = np.array([(d[0] + d[2]) / 2.0, (d[1] + d[3]) / 2.0])
                center[1] -= (d[3] - d[1]) * CENTER_Y_OFFSET
                scale = (d[2] - d[0] + d[3] - d[1]) / REFERENCE_SCALE
                crops.append(crop(img, center, scale).transpose(2, 0, 1).astype(np.float32) / 255.0)
                geo.append((center, scale))
            with torch.no_grad():
                hm = net(torch.from_numpy(np.stack(crops)).to(self.device))
                hm = (hm[-1] if isinstance(hm, list) else hm).float().cpu().numpy()
            for i, (center, scale) in enumerate(geo):
                _, pts_img, _ = get_preds_fromhm(hm[i:i + 1], center, scale)
                out[start + i] = np.asarray(pts_img).reshape(68, 2)
        return out

    def _refine(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        out = []
        for f in faces:
            pts = self.fit(image, f.box)
            out.append(Face(points=pts, box=f.box, pupils=locate_pupils(image, pts), score=f.score))
        return out

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face, largest first: dlib's boxes (HOG, CNN confirm/fallback), FAN's points."""
        return self._refine(image, self._boxes.detect(image))

    def detect_quick(self, image: np.ndarray, *, small_faces: bool = False) -> list[Face]:
        """HOG-only boxes (video re-detection), FAN's points."""
        return self._refine(image, self._boxes.detect_quick(image, small_faces=small_faces))
