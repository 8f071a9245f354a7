"""Stream video through the ffmpeg that imageio-ffmpeg ships: probe, decode, encode.

Frames are never all in memory: `iter_frames` yields one RGB frame at a time from an ffmpeg
pipe and `VideoWriter` pipes raw RGB into libx264. ffmpeg always gets an argument list (never
a shell string) and absolute `file:` paths, so names starting with '-' or holding ':' cannot
be taken as options or protocols. Each ffmpeg runs in its own session, so a terminal Ctrl-C
reaches Python only and the Python side decides how ffmpeg stops and what is cleaned up.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np

from talkanim.errors import InputError, OutputError
from talkanim.io.atomic import atomic_output, check_output_dir

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".wmv", ".mpg", ".mpeg",
     ".ts", ".mts", ".m2ts", ".3gp", ".ogv", ".gif"}
)

# Seconds allowed for probing, plus this many per byte of file (a probe demuxes every packet,
# it does not decode): a hung ffmpeg on a strange file must not hang the program.
PROBE_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S_PER_BYTE = 1 / 20e6

# Container formats by output extension; anything else is left to ffmpeg to infer.
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", "": "mp4"}

_F_SETPIPE_SZ = 1031  # Linux fcntl: grow a pipe so a whole frame moves in a few syscalls
_PIPE_BYTES = 1 << 20


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (imageio-ffmpeg's static build unless IMAGEIO_FFMPEG_EXE)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_path(path: Path) -> str:
    # Absolute and with an explicit protocol: "-x.mp4" is not an option, "a:b.mp4" not a URL.
    return "file:" + os.path.abspath(path)


# --------------------------------------------------------------------------- sniffing

_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


def sniff_video(head: bytes) -> bool:
    """True when `head` (a file's first bytes) starts like a video container ffmpeg reads."""
    return (
        head[4:8] in _MP4_BOXES  # MP4 / MOV / 3GP
        or head.startswith(b"\x1a\x45\xdf\xa3")  # Matroska / WebM
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or head.startswith(b"FLV")
        or head.startswith(b"\x30\x26\xb2\x75")  # ASF / WMV
        or head.startswith(b"\x00\x00\x01\xba")  # MPEG program stream
        or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)  # MPEG-TS packets
        or head.startswith(b"GIF8")
    )


def is_video_path(path: str | Path) -> bool:
    """Whether `path` is a video: by its first bytes when readable, else its extension.

    A readable file that starts like a still image or a zip (`.npz` track) is not a video;
    unknown bytes fall back to the extension, so random bytes named `.mp4` count as a video
    here and `probe_video` then explains what is wrong. GIFs count as both image and video.
    """
    from talkanim.io.image import read_head, sniff_image

    p = Path(path)
    head = read_head(p, 256)
    if head:
        if head.startswith(b"GIF8"):
            return True
        if sniff_image(head) or head.startswith(b"PK\x03\x04"):
            return False
        if sniff_video(head):
            return True
    return p.suffix.lower() in VIDEO_EXTENSIONS


# --------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learned; `width`/`height` are those of the frames `iter_frames` yields
    (display orientation: rotation metadata already applied)."""

    path: Path
    width: int
    height: int
    fps: float
    # Frames in the video stream (packets counted): exact for constant-frame-rate files; for a
    # variable-frame-rate file, `iter_frames` yields about duration * fps instead.
    num_frames: int | None
    duration: float | None  # container duration in seconds
    has_audio: bool


def _check_input_file(p: Path, what: str) -> None:
    if not p.exists():
        raise InputError(f"cannot read {what}, no such file: {p}")
    if p.is_dir():
        raise InputError(f"cannot read {what}, it is a folder: {p}")
    if not os.access(p, os.R_OK):
        raise InputError(f"cannot read {what}, permission denied: {p}")


def _run_ffmpeg_probe(p: Path, args: list[str]) -> tuple[int, str]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _ffmpeg_path(p), *args]
    try:
        size = p.stat().st_size
    except OSError:
        size = 0
    timeout = PROBE_TIMEOUT_S + size * PROBE_TIMEOUT_S_PER_BYTE
    try:
        res = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            timeout=timeout, start_new_session=True, check=False,
        )
    except subprocess.TimeoutExpired:
        raise InputError(f"timed out reading video after {timeout:.0f} s: {p}") from None
    return res.returncode, res.stderr.decode("utf-8", errors="replace")


def _input_section(text: str) -> list[str]:
    """The lines ffmpeg printed about input #0 (not about outputs or progress)."""
    lines = text.replace("\r", "\n").splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("Input #0"):
            inside = True
        elif inside and (line.startswith(("Stream mapping", "Output #", "Input #1", "["))):
            break
        if inside:
            out.append(line)
    return out


_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_SIZE_RE = re.compile(r"(?<![\w/])(\d{1,6})x(\d{1,6})(?!\w)")
_FPS_RE = re.compile(r"([\d.]+)(k?) fps")
_TBR_RE = re.compile(r"([\d.]+)(k?) tbr")
_ROT_RE = re.compile(r"rotation of (-?[\d.]+) degrees")
_DUR_RE = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")


# ffmpeg's closing summaries, which say less than the line before them.
_GENERIC_ERRORS = ("Error opening output file", "Error opening input file", "Conversion failed",
                   "Error while filtering", "Error closing", "Error initializing",
                   "Terminating thread", "Exiting")


def _last_error_line(text: str) -> str:
    """ffmpeg's most telling line: the last specific error, else its last line."""
    lines = [
        re.sub(r"^(\[[^\]]*\]\s*)+", "", ln.strip())
        for ln in text.replace("\r", "\n").splitlines()
        if ln.strip()
    ]
    lines = [ln for ln in lines if ln and not ln.startswith(("frame=", "size=", "video:"))]
    specific = [ln for ln in lines if not ln.startswith(_GENERIC_ERRORS)]
    for ln in reversed(specific):
        if "rror" in ln or "nvalid" in ln or "No space" in ln or "denied" in ln or "nable" in ln:
            return ln
    if specific:
        return specific[-1]
    return lines[-1] if lines else "no message from ffmpeg"


def _video_stream(section: list[str]) -> tuple[str, list[str]] | None:
    """The first real video stream's line and its indented side-data lines."""
    for i, line in enumerate(section):
        m = _STREAM_RE.match(line)
        if m and m.group(1) == "Video" and "(attached pic)" not in line:
            extra = []
            for nxt in section[i + 1 :]:
                if _STREAM_RE.match(nxt):
                    break
                extra.append(nxt)
            return m.group(2), extra
    return None


def _rate(regex: re.Pattern[str], line: str) -> float | None:
    m = regex.search(line)
    if not m:
        return None
    val = float(m.group(1)) * (1000.0 if m.group(2) else 1.0)
    return val if val > 0 else None


def _snap_fps(fps: float) -> float:
    # ffmpeg prints rates rounded ("29.97"); restore the exact NTSC rates so long videos
    # do not drift against their audio.
    for exact in (24000 / 1001, 30000 / 1001, 60000 / 1001, 120000 / 1001):
        if abs(fps - exact) < 0.006:
            return exact
    return fps


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's size (display orientation), fps, frame count, duration and audio presence.

    One ffmpeg run demuxes the whole video stream without decoding it (fast: ~1000x real
    time), which counts the frames and proves the file is complete. Raises `InputError`, one
    line naming the path, for a missing file, a file that is not a video (random bytes, an
    image), an audio-only file, a video with no frames, or a truncated / damaged MP4.
    """
    p = Path(path)
    _check_input_file(p, "video")
    rc, text = _run_ffmpeg_probe(p, ["-map", "0:V:0", "-c", "copy", "-f", "null", "-"])
    section = _input_section(text)
    if not section:
        low = text.lower()
        if "moov atom not found" in low and _starts_like_video(p):
            raise InputError(f"video file is truncated or incomplete (no moov atom): {p}")
        if "invalid data found" in low or "moov atom not found" in low:
            raise InputError(f"not a video (ffmpeg cannot read its format): {p}")
        raise InputError(f"cannot read video ({_last_error_line(text)}): {p}")
    stream = _video_stream(section)
    has_audio = any((m := _STREAM_RE.match(ln)) and m.group(1) == "Audio" for ln in section)
    if stream is None:
        kind = "an audio-only file" if has_audio else "no video stream"
        raise InputError(f"not a video ({kind}): {p}")
    line, extra = stream
    size = _SIZE_RE.search(line)
    if not size or int(size.group(1)) == 0 or int(size.group(2)) == 0:
        raise InputError(f"cannot read video, unknown frame size: {p}")
    width, height = int(size.group(1)), int(size.group(2))
    rot = _ROT_RE.search("\n".join(extra))
    if rot and round(float(rot.group(1))) % 180 == 90:
        # ffmpeg autorotates when decoding (on by default), so frames come out transposed.
        width, height = height, width
    fps = _snap_fps(_rate(_FPS_RE, line) or _rate(_TBR_RE, line) or 25.0)
    dur_m = _DUR_RE.search("\n".join(section))
    duration = (
        int(dur_m.group(1)) * 3600 + int(dur_m.group(2)) * 60 + float(dur_m.group(3))
        if dur_m else None
    )
    low = text.lower()
    if "partial file" in low or "moov atom not found" in low:
        raise InputError(f"video file is truncated or damaged (partial file): {p}")
    counts = _FRAME_RE.findall(text.split("Stream mapping", 1)[-1])
    num_frames = int(counts[-1]) if counts else None
    if num_frames == 0:
        raise InputError(f"video has no frames: {p}")
    if num_frames is None and rc != 0:
        raise InputError(f"cannot read video ({_last_error_line(text)}): {p}")
    if duration is None and num_frames:
        duration = num_frames / fps
    return VideoInfo(
        path=p, width=width, height=height, fps=fps, num_frames=num_frames,
        duration=duration, has_audio=has_audio,
    )


def _starts_like_video(p: Path) -> bool:
    from talkanim.io.image import read_head

    head = read_head(p, 256)
    return bool(head) and sniff_video(head)


def has_audio_stream(path: str | Path) -> bool:
    """Whether a media file (video or audio) has an audio stream; reads the header only."""
    p = Path(path)
    _check_input_file(p, "audio source")
    _, text = _run_ffmpeg_probe(p, [])
    return any(
        (m := _STREAM_RE.match(ln)) and m.group(1) == "Audio" for ln in _input_section(text)
    )


# --------------------------------------------------------------------------- decoding


def _grow_pipe(fileobj: object) -> None:
    try:
        import fcntl

        fcntl.fcntl(fileobj.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[attr-defined]
    except (OSError, ImportError, AttributeError, ValueError):
        pass  # only a speed-up


def _read_full(raw: object, buf: memoryview) -> int:
    total, n = 0, len(buf)
    while total < n:
        got = raw.readinto(buf[total:])  # type: ignore[attr-defined]
        if not got:
            break
        total += got
    return total


def _read_tail(fh: object, limit: int = 8192) -> str:
    try:
        fh.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
        end = fh.tell()  # type: ignore[attr-defined]
        fh.seek(max(0, end - limit))  # type: ignore[attr-defined]
        return fh.read().decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return ""


def iter_frames(path: str | Path, *, info: VideoInfo | None = None) -> Iterator[np.ndarray]:
    """Stream a video's frames as (height, width, 3) uint8 RGB arrays, one at a time.

    Probes first (unless `info` is given), so a bad file raises `InputError` here, before
    iteration. Frames are in display orientation and exactly `info.width` x `info.height`;
    each yielded array is new (the caller may keep it). Frames come at a constant
    `info.fps` (a constant-frame-rate file: every frame once; a variable one: frames
    repeated/dropped to that rate, so writing them at `info.fps` keeps the audio in sync).
    ffmpeg starts on the first `next()` and is killed and reaped
    when the generator finishes, is closed (`close()`, `break` + garbage collection) or
    raises. Raises `InputError` when nothing could be decoded or ffmpeg fails midway.
    """
    info = info if info is not None else probe_video(path)
    return _frames(Path(path), info)


def _frames(p: Path, info: VideoInfo) -> Iterator[np.ndarray]:
    w, h = info.width, info.height
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats",
        "-i", _ffmpeg_path(p), "-map", "0:V:0", "-an", "-sn", "-dn",
        # Autorotation happens before this filter; scale to the probed size is then a no-op
        # merged with the yuv->rgb conversion, and guarantees the frame size we read.
        # Then a constant rate at the probed (average) rate: each output tick shows the frame
        # nearest in time, counted from the file's start (a late-starting video stream is
        # padded with its first frame, as the audio plays from there), so frames written at
        # info.fps stay in sync with the audio. (`-fps_mode cfr -r` instead drops and repeats
        # frames late: on a variable-frame-rate file it showed them 0.045 s late on average.)
        "-vf", f"scale={w}:{h},fps={_fps_arg(info.fps)}:start_time=0:round=near",
        "-fps_mode", "passthrough",
        "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1",
    ]
    with tempfile.TemporaryFile() as errf:  # a file, not a pipe: ffmpeg can never block on it
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf, bufsize=0,
            start_new_session=True,
        )
        try:
            _grow_pipe(proc.stdout)
            count = 0
            frame_bytes = w * h * 3
            while True:
                frame = np.empty((h, w, 3), dtype=np.uint8)
                got = _read_full(proc.stdout, memoryview(frame).cast("B"))
                if got < frame_bytes:
                    break  # end of stream (a partial last frame is dropped)
                count += 1
                yield frame
            rc = proc.wait()
            if count == 0:
                reason = _last_error_line(_read_tail(errf))
                raise InputError(f"no video frames could be decoded ({reason}): {p}")
            if rc != 0:
                reason = _last_error_line(_read_tail(errf))
                raise InputError(f"video decoding failed after {count} frames ({reason}): {p}")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


# --------------------------------------------------------------------------- encoding


def _fps_arg(fps: float) -> str:
    fr = Fraction(fps).limit_denominator(100_000)  # 29.97002997 -> 30000/1001
    return f"{fr.numerator}/{fr.denominator}"


class VideoWriter:
    """Encode RGB frames to H.264 (libx264, yuv420p, BT.709) MP4, optionally with audio.

    Use as a context manager::

        with VideoWriter("out.mp4", w, h, fps, audio_from=driver) as vw:
            for frame in frames:
                vw.write(frame)

    - Odd sizes: yuv420p needs even dimensions, so an odd width/height is **padded** by one
      pixel on the right/bottom (edge pixels repeated): output = input rounded *up* to even
      (`out_width`, `out_height`). Frames are written at the given size.
    - Audio: when `audio_from` has an audio stream it is encoded to AAC beside the video;
      the output lasts as long as the video (audio cut, or padded with silence). Pass
      `num_frames` when the count is known: the audio is then cut at exactly
      num_frames / fps. Without it ffmpeg's `-shortest` decides, and when frames arrive
      slowly or the machine is busy it lets up to seconds of audio run past the last frame
      (measured: 0.14-2.4 s on a loaded 2-core machine).
    - Atomic: ffmpeg writes a hidden temporary file beside `path` (`atomic_output`), renamed
      onto `path` only when the block ends cleanly; on any exception (KeyboardInterrupt too)
      ffmpeg is killed, the temporary file deleted and the exception re-raised.
    - `path == "-"`: a fragmented MP4 (frag_keyframe+empty_moov) is streamed to stdout
      (file descriptor 1); no temporary file.
    - Errors: missing or read-only output folder -> `OutputError` from the constructor,
      before any work; ffmpeg failing (disk full, bad extension) -> `OutputError` with
      ffmpeg's last error line, and no file left behind. Bad `audio_from` -> `InputError`.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float,
        *,
        audio_from: Path | None = None,
        num_frames: int | None = None,
        crf: int = 20,
        preset: str = "veryfast",
    ) -> None:
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.out_width = self.width + (self.width & 1)
        self.out_height = self.height + (self.height & 1)
        self.to_stdout = str(path) == "-"
        self.path: Path | None = None if self.to_stdout else Path(path)
        self.frames_written = 0
        self._frame_bytes = self.width * self.height * 3
        self._proc: subprocess.Popen[bytes] | None = None
        self._atomic = None
        self._errf = None
        self._tmp: Path | None = None
        self._closed = False

        if self.path is not None:
            check_output_dir(self.path)
        with_audio = audio_from is not None and has_audio_stream(audio_from)

        cmd = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostats", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
            "-framerate", _fps_arg(self.fps), "-i", "pipe:0",
        ]
        if with_audio:
            cmd += ["-i", _ffmpeg_path(Path(audio_from))]  # type: ignore[arg-type]
        cmd += ["-map", "0:v:0"]
        if with_audio:
            cmd += ["-map", "1:a:0", "-c:a", "aac"]
            if num_frames:
                # padded with silence, then cut at the video's exact length
                seconds = f"{int(num_frames) / self.fps:.6f}"
                cmd += ["-af", f"apad=whole_dur={seconds},atrim=end={seconds}"]
            else:  # the video decides the length (audio cut or padded with silence)
                cmd += ["-af", "apad", "-shortest"]
        vf = []
        if (self.out_width, self.out_height) != (self.width, self.height):
            vf.append(f"pad={self.out_width}:{self.out_height}:0:0")
            vf.append(
                f"fillborders=right={self.out_width - self.width}"
                f":bottom={self.out_height - self.height}:mode=smear"
            )
        # Convert and tag as BT.709 so players show the colours we computed.
        vf.append("scale=out_color_matrix=bt709:out_range=tv,format=yuv420p")
        cmd += [
            "-vf", ",".join(vf), "-c:v", "libx264", "-preset", str(preset), "-crf", str(int(crf)),
            "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
            "-color_trc", "bt709", "-color_range", "tv",
        ]
        if self.to_stdout:
            cmd += ["-movflags", "frag_keyframe+empty_moov", "-f", "mp4", "pipe:1"]
            try:
                sys.stdout.flush()  # anything Python buffered must precede the video bytes
            except (OSError, ValueError):
                pass
        else:
            assert self.path is not None
            self._atomic = atomic_output(self.path)
            tmp = self._tmp = self._atomic.__enter__()
            suffix = self.path.suffix.lower()
            if suffix in _MUXERS:
                cmd += ["-f", _MUXERS[suffix]]
            if _MUXERS.get(suffix, "") in ("mp4", "mov"):
                cmd += ["-movflags", "+faststart"]  # playable while downloading
            cmd.append(_ffmpeg_path(tmp))

        self._errf = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=None if self.to_stdout else subprocess.DEVNULL,
                stderr=self._errf, bufsize=0, start_new_session=True,
            )
        except BaseException:
            self._abort()
            raise
        _grow_pipe(self._proc.stdin)

    def write(self, frame: np.ndarray) -> None:
        """Append one (height, width, 3) uint8 RGB frame."""
        if self._closed or self._proc is None:
            raise ValueError("write() on a closed VideoWriter")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 frame, "
                f"got {frame.shape} {frame.dtype}"
            )
        buf = memoryview(np.ascontiguousarray(frame)).cast("B")  # no copy when contiguous
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while buf:
                n = stdin.write(buf)
                buf = buf[n:]
        except (BrokenPipeError, OSError) as exc:
            self._fail(exc)
        except BaseException:
            self._abort()
            raise
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding and, for a file, rename it into place. Idempotent."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames to write: {self._name()}")
            proc = self._proc
            assert proc is not None and proc.stdin is not None
            try:
                proc.stdin.close()
            except OSError as exc:
                self._fail(exc)
            rc = proc.wait()
            if rc != 0:
                self._fail(None)
            self._closed = True
            self._errf.close()
            if self._atomic is not None:
                atomic, self._atomic = self._atomic, None
                atomic.__exit__(None, None, None)  # rename; OutputError if that fails
        except BaseException:
            self._abort()
            raise

    def abort(self) -> None:
        """Stop ffmpeg and delete the temporary file without producing an output."""
        self._abort()

    def _name(self) -> str:
        return "stdout" if self.path is None else str(self.path)

    def _fail(self, exc: BaseException | None) -> None:
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        reason = _last_error_line(_read_tail(self._errf))
        rc = proc.poll() if proc is not None else None
        if reason == "no message from ffmpeg":
            if rc is not None and rc < 0:
                # e.g. SIGXFSZ (file size limit), SIGKILL from the OOM killer
                try:
                    reason = f"ffmpeg was killed by {signal.Signals(-rc).name}"
                except ValueError:
                    reason = f"ffmpeg was killed by signal {-rc}"
            elif exc is not None:
                reason = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
        if self._tmp is not None and self.path is not None:
            reason = reason.replace(_ffmpeg_path(self._tmp), str(self.path))
        err = OutputError(f"cannot write video ({reason}): {self._name()}")
        self._abort(err)
        raise err from None

    def _abort(self, exc: BaseException | None = None) -> None:
        self._closed = True
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass  # broken pipe on close: ffmpeg is gone anyway
        if not getattr(self._errf, "closed", True):
            self._errf.close()
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            err = exc if exc is not None else OutputError("aborted")
            atomic.__exit__(type(err), err, err.__traceback__)  # deletes the temporary file

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort(exc)

    def __del__(self) -> None:
        # A writer dropped without close() must not leave ffmpeg or a temporary file behind.
        if not getattr(self, "_closed", True):
            try:
                self._abort()
            except Exception:
                pass
