"""mesh backend: MediaPipe's face mesh + iris networks run in torch (no mediapipe install).

Faces are found by our dlib detector (HOG, CNN fallback), so bad input behaves as with the
dlib backend. From a face the pipeline is MediaPipe's Iris pipeline:

1. a 192 x 192 crop, square, 1.5 x the face, turned so the eye corners are level
   (`mesh_roi`), gives the 468-vertex mesh (x, y in image pixels, z in the same scale) and
   a face-presence score;
2. each eye gets a 64 x 64 crop along its corners (the second eye mirrored: the model knows
   one eye side), giving a refined eyelid outline and 5 iris points;
3. the refined eyelids replace the mesh's (x, y; the mesh keeps its own z, whose origin the
   iris model does not share; the iris model's outer rings are not used, see `mesh_layout`),
   and each iris takes the mean z of its eyelid.

The result is the 478-point layout of `mesh_layout` (MediaPipe's refine_landmarks order);
the iBUG-68 points are read off it, the pupils are the iris centres. In a video the crop of
the next frame comes from this frame's face mesh (`fit_face(..., previous=face)`), as
MediaPipe tracks with `refine_landmarks=False`; the eyes need nothing of the next frame, so
`EyeWorker` adds them on a second thread while the face mesh follows the video.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import cv2
import numpy as np
import torch

from ..devices import resolve_device
from .dlib_backend import DlibDetector, box_from_points
from .mesh_layout import EYE_FLIP, EYELID, IRIS, IRIS_ORDER, NUM_MESH, NUM_POINTS, ibug68_from_mesh
from .mesh_roi import Roi, eye_rois, face_roi_from_mesh, face_roi_from_points, pixel_centres, project
from .tfgraph import load_shipped, torch_threads
from .types import Face

MESH_INPUT = 192
IRIS_INPUT = 64
# A dlib box (x0, y0, x1, y1) -> the mesh crop that two passes settle on, measured on 60 faces
# of ../shared/data (portraits, identities): median centre at the box's centre (0.50, 0.50),
# side 1.70 x the box width (10th-90th percentile 1.56-1.89).
_BOX_CENTRE_Y = 0.5
_BOX_SIDE = 1.7
# Passes of the mesh network from a rough crop (a detector box): the second pass starts from
# the first pass's mesh, as MediaPipe's tracking would on the next frame.
_PASSES_FROM_BOX = 2
# Frames whose eyes go through the iris network together in a video (see `EyeWorker`).
IRIS_BATCH_FRAMES = 4


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -60 else 0.0


def roi_from_box(box: tuple[float, float, float, float]) -> Roi:
    """A first, upright face crop from a face box (HOG convention)."""
    x0, y0, x1, y1 = box
    w = max(x1 - x0, 1.0)
    return Roi((x0 + x1) / 2, y0 + _BOX_CENTRE_Y * (y1 - y0), _BOX_SIDE * w, 0.0)


class MeshDetector:
    """Face mesh with iris (478 points) -> iBUG-68 points and pupils; dlib's detector for boxes.

    The networks are loaded once per object and run on `device` ("auto": CUDA when there is
    one). `fit_face` is what the tracker calls per frame. On the CPU the networks run on
    `threads` torch threads (default 1): one frame's crops are too small to share across
    cores (on 2 busy cores a second thread made a frame 4-17x slower, measured), and the
    other core is decoding the video.
    """

    name = "mesh"

    def __init__(self, *, device: str = "cpu", detect_max_side: int = 640, threads: int | None = 1,
                 log: Callable[[str], None] | None = None) -> None:
        self.device = resolve_device(device)
        self.threads = threads if self.device.type == "cpu" else None
        self._boxes = DlibDetector(detect_max_side=detect_max_side, log=log)
        self.detect_max_side = int(detect_max_side)
        self._log = log
        self._mesh_net = load_shipped("face_landmark").to(self.device)
        self._iris_net = load_shipped("iris_landmark").to(self.device)

    # -- networks --------------------------------------------------------------------------
    def _tensor(self, crops: np.ndarray) -> torch.Tensor:
        """(B, n, n, 3) uint8 crops -> (B, 3, n, n) float in [0, 1] on the device. Scaled in
        numpy: the NHWC array seen as NCHW is already channels_last, so nothing is copied on
        the CPU (torch's own element-wise ops here ran on 2 busy threads and took 16 ms)."""
        x = torch.from_numpy(crops.astype(np.float32) * np.float32(1 / 255)).permute(0, 3, 1, 2)
        if self.device.type != "cpu":
            x = x.to(self.device).contiguous()
        return x

    def _mesh(self, image: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        """(468, 3) float64 mesh in image pixels and the face-presence probability in `roi`."""
        m = roi.matrix(MESH_INPUT)
        crop = cv2.warpAffine(image, m, (MESH_INPUT, MESH_INPUT),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        with torch.inference_mode(), torch_threads(self.threads):
            lm, flag = self._mesh_net(self._tensor(crop[None]))
        raw = lm.reshape(NUM_MESH, 3).double().cpu().numpy()
        mesh = np.empty((NUM_MESH, 3))
        mesh[:, :2] = project(m, raw[:, :2])
        mesh[:, 2] = raw[:, 2] * (roi.size / MESH_INPUT)
        return mesh, _sigmoid(float(flag.reshape(-1)[0]))

    def _eye_crops(self, image: np.ndarray, mesh: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Both eyes' (2, 64, 64, 3) crops along the mesh's eye corners, and their 2x3 matrices."""
        mats = [roi.matrix(IRIS_INPUT, flip) for roi, flip in zip(eye_rois(mesh), EYE_FLIP)]
        # The iris model reads pixel u as covering [u, u+1]: sample each pixel at its centre
        # (MediaPipe's crop-then-resize does the same) and project its outputs as they are.
        # Sampling at u instead put the mirrored eye 1.3 crop pixels (0.045 eye widths) off
        # the other, against MediaPipe's attention mesh.
        crops = np.stack([
            cv2.warpAffine(image, pixel_centres(m), (IRIS_INPUT, IRIS_INPUT),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
            for m in mats
        ])
        return crops, mats

    def _iris(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The iris network on (2k, 64, 64, 3) eye crops: eyelid contours and iris points,
        (2k, 71, 3) and (2k, 5, 3) float64 in crop pixels."""
        with torch.inference_mode(), torch_threads(self.threads):
            contour, iris = self._iris_net(self._tensor(crops))
        return (contour.reshape(len(crops), -1, 3).double().cpu().numpy(),
                iris.reshape(len(crops), -1, 3).double().cpu().numpy())

    @staticmethod
    def _with_eyes(mesh: np.ndarray, mats: list[np.ndarray], contour: np.ndarray, iris: np.ndarray) -> np.ndarray:
        """The 478-point layout (float32): the face mesh with both eyelids refined and the
        irises added, from one frame's iris network outputs (two eyes)."""
        out = np.empty((NUM_POINTS, 3))
        out[:NUM_MESH] = mesh[:NUM_MESH]
        for e, m in enumerate(mats):
            lid = list(EYELID[e])
            out[lid, :2] = project(m, contour[e, :len(lid), :2])
            a, b = IRIS[e]
            out[a:b, :2] = project(m, iris[e, list(IRIS_ORDER[e]), :2])
            out[a:b, 2] = mesh[lid, 2].mean()
        return out.astype(np.float32)

    def _refine_eyes(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        """The 478-point layout: `mesh` with both eyelids refined and the irises added."""
        crops, mats = self._eye_crops(image, mesh)
        return self._with_eyes(mesh, mats, *self._iris(crops))  # both eyes in one batch

    # -- faces -----------------------------------------------------------------------------
    def mesh_in(self, image: np.ndarray, roi: Roi, passes: int = 1, *, eyes: bool = True) -> tuple[np.ndarray, float]:
        """(478, 3) float32 mesh with irises and the face-presence probability, starting from
        the face crop `roi`; each extra pass re-crops from the previous pass's mesh. Without
        `eyes`: the face mesh alone, (468, 3), its eyelids as the face mesh puts them."""
        image = np.ascontiguousarray(image)
        mesh, score = self._mesh(image, roi)
        for _ in range(passes - 1):
            mesh, score = self._mesh(image, face_roi_from_mesh(mesh))
        return (self._refine_eyes(image, mesh) if eyes else mesh.astype(np.float32)), score

    def _face(self, mesh: np.ndarray, score: float, box=None) -> Face:
        points = ibug68_from_mesh(mesh)
        pupils = mesh[[IRIS[0][0], IRIS[1][0]], :2].astype(np.float32) if len(mesh) == NUM_POINTS else None
        box = tuple(float(v) for v in (box if box is not None else box_from_points(points)))
        return Face(points=points, box=box, pupils=pupils, score=float(score), mesh=mesh)

    def fit_face(self, image: np.ndarray, box: tuple[float, float, float, float], *,
                 previous: Face | None = None, eyes: bool = True) -> Face:
        """The face inside `box` (HOG convention), or tracked from `previous` (a Face of the
        previous frame with a mesh: the crop comes from its mesh, as MediaPipe tracks).

        `score` of the result is the network's face-presence probability (MediaPipe drops a
        track below 0.5). Without `eyes` the face is the face mesh's alone (468 vertices, the
        eyelids as it puts them, no pupils): enough to follow a face from frame to frame, and
        `eyes_later` completes it.
        """
        if previous is not None and previous.mesh is not None:
            mesh, score = self.mesh_in(image, face_roi_from_mesh(previous.mesh), 1, eyes=eyes)
        else:
            mesh, score = self.mesh_in(image, roi_from_box(box), _PASSES_FROM_BOX, eyes=eyes)
        return self._face(mesh, score)

    def eyes_later(self) -> EyeWorker:
        """A worker that completes `fit_face(..., eyes=False)` faces while a tracker goes on
        (use it as a context manager)."""
        return EyeWorker(self)

    def fit(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68 landmarks (68, 2) float32 fitted inside `box` (x0, y0, x1, y1, HOG convention)."""
        return self.fit_face(image, box).points

    def _from_detections(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        out = []
        for f in faces:
            # dlib's 68 points give the crop's angle; two passes settle it on the mesh
            mesh, score = self.mesh_in(image, face_roi_from_points(f.points), _PASSES_FROM_BOX)
            out.append(self._face(mesh, score, f.box))
        out.sort(key=lambda f: f.size, reverse=True)
        return out

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face in an RGB uint8 still, largest first: dlib's boxes (HOG, CNN
        confirm/fallback), the mesh's 478 points, iBUG-68 points and pupils."""
        image = np.ascontiguousarray(image)
        return self._from_detections(image, self._boxes.detect(image))

    def detect_quick(self, image: np.ndarray, *, small_faces: bool = False) -> list[Face]:
        """HOG-only boxes (video re-detection), the mesh's points."""
        image = np.ascontiguousarray(image)
        return self._from_detections(image, self._boxes.detect_quick(image, small_faces=small_faces))


class EyeWorker:
    """Adds the eyes (refined eyelids, irises, pupils) to faces a video tracker followed with
    the face mesh alone, on a worker thread, `IRIS_BATCH_FRAMES` frames at a time.

    A frame's eyes depend on its own face mesh only, and the next frame's face crop on the
    face mesh only (MediaPipe's `refine_landmarks=False` tracking), so the iris network of
    frame i runs while the face mesh network follows frame i + 1 (torch lets go of the GIL
    inside the networks). Four frames' eyes in one batch also cost less: 6.0 against 9.6 ms
    a frame on one thread of the 2-core machine (more than four frames spilled the cache and
    cost more). Each frame's eye crops are cut in `add`, so no frame is kept.
    """

    def __init__(self, detector: MeshDetector) -> None:
        self._detector = detector
        self._waiting: list[tuple[np.ndarray, list[np.ndarray], Face, Future]] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="talkanim-eyes")

    def add(self, image: np.ndarray, face: Face) -> Future:
        """A future of `face` with its eyes; a face that has them already is its own result."""
        done: Future = Future()
        if face.mesh is None or len(face.mesh) == NUM_POINTS:
            done.set_result(face)
            return done
        crops, mats = self._detector._eye_crops(np.ascontiguousarray(image), face.mesh)
        self._waiting.append((crops, mats, face, done))
        if len(self._waiting) >= IRIS_BATCH_FRAMES:
            self._send()
        return done

    def _send(self) -> None:
        batch, self._waiting = self._waiting, []
        if batch:
            self._pool.submit(self._complete, batch)

    def _complete(self, batch: list[tuple[np.ndarray, list[np.ndarray], Face, Future]]) -> None:
        try:
            contour, iris = self._detector._iris(np.concatenate([crops for crops, *_ in batch]))
            for k, (_, mats, face, done) in enumerate(batch):
                mesh = self._detector._with_eyes(face.mesh, mats, contour[2 * k:2 * k + 2], iris[2 * k:2 * k + 2])
                done.set_result(self._detector._face(mesh, face.score))
        except BaseException as exc:  # handed to whoever waits on the faces
            for *_, done in batch:
                if not done.done():
                    done.set_exception(exc)

    def close(self, wait: bool = True) -> None:
        """Send what is waiting and finish (wait=False: drop what has not started)."""
        if wait:
            self._send()
        self._pool.shutdown(wait=True, cancel_futures=not wait)

    def __enter__(self) -> EyeWorker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(wait=exc_type is None)
