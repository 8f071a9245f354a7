"""The project's own errors: each carries one clear line for the user and an exit code.

The CLI prints `str(error)` on stderr and exits with `error.exit_code`; anything that is not a
`TalkanimError` is a bug and shows a traceback only with `--debug`.
"""

from __future__ import annotations


class TalkanimError(Exception):
    """Base class: a problem the user can fix, told in one line."""

    exit_code = 1


class InputError(TalkanimError):
    """A file is missing, unreadable, or not what it should be (image, video, track)."""

    exit_code = 2


class NoFaceError(TalkanimError):
    """No face was found where one is needed (source image, or every driver frame)."""

    exit_code = 3


class OutputError(TalkanimError):
    """The output cannot be written (folder missing or read-only, disk full, same as input)."""

    exit_code = 4


class WeightsError(TalkanimError):
    """Model weights or a person file are missing, tampered with, or not safetensors."""

    exit_code = 5


class BackendUnavailableError(TalkanimError):
    """A landmark or model backend cannot run here (e.g. FAN weights offline)."""

    exit_code = 6
