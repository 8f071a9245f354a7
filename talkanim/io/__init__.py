"""Input and output: images in as RGB uint8, video streamed in and out through ffmpeg.

Public surface (what the other stages use):

- `load_image(path) -> (H, W, 3) uint8 RGB`
- `VideoInfo`, `probe_video(path)`, `iter_frames(path, *, info=None)`
- `VideoWriter(path, width, height, fps, *, audio_from=None, num_frames=None, crf=20,
  preset="veryfast")`
- `atomic_output(target)`: temporary file beside `target`, renamed on success
- `is_image_path(path)`, `is_video_path(path)`
- `camera_shots(path)`: the continuous camera shots of a video (frame ranges between cuts);
  `watch_cuts(frames, cuts)` finds the cuts of frames streaming past
"""

from talkanim.io.atomic import atomic_output
from talkanim.io.cuts import camera_shots, watch_cuts
from talkanim.io.image import MAX_IMAGE_PIXELS, is_image_path, load_image
from talkanim.io.video import (
    VideoInfo,
    VideoWriter,
    ffmpeg_exe,
    has_audio_stream,
    is_video_path,
    iter_frames,
    probe_video,
)

__all__ = [
    "MAX_IMAGE_PIXELS",
    "VideoInfo",
    "VideoWriter",
    "atomic_output",
    "camera_shots",
    "ffmpeg_exe",
    "has_audio_stream",
    "is_image_path",
    "is_video_path",
    "iter_frames",
    "load_image",
    "probe_video",
    "watch_cuts",
]
