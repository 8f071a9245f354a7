"""Text -> speech with a TTS engine already on the machine (espeak-ng, or espeak), offline.

Nothing is downloaded: when no engine is on PATH the user gets one line saying how to install
one (exit code 6, "a backend cannot run here").
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from talkanim.errors import BackendUnavailableError, InputError

ENGINES = ("espeak-ng", "espeak")
INSTALL_HINT = ("install espeak-ng: `sudo apt-get install espeak-ng` (Debian/Ubuntu), "
                "`sudo dnf install espeak-ng` (Fedora), `brew install espeak-ng` (macOS)")
MAX_TEXT_CHARS = 100_000


def find_engine() -> str | None:
    """Path of the first TTS engine found on PATH, or None."""
    for name in ENGINES:
        found = shutil.which(name)
        if found:
            return found
    return None


def check_text(text: str) -> str:
    """The text to speak, stripped; InputError when there is nothing to say."""
    stripped = (text or "").strip()
    if not stripped:
        raise InputError("--text is empty: give the words to speak")
    if len(stripped) > MAX_TEXT_CHARS:
        raise InputError(f"--text is too long ({len(stripped)} characters, limit {MAX_TEXT_CHARS}); "
                         "synthesize it to an audio file first")
    return stripped


def synthesize(text: str, out_wav: Path, voice: str = "en", speed_wpm: int = 160) -> Path:
    """Speak `text` into `out_wav` (WAV) with the TTS engine on this machine.

    Raises BackendUnavailableError (exit 6) when no engine is installed, InputError for empty
    text or an unknown voice.
    """
    text = check_text(text)
    engine = find_engine()
    if engine is None:
        raise BackendUnavailableError(f"--text needs a text-to-speech engine and none was found; {INSTALL_HINT}")
    cmd = [engine, "-v", voice, "-s", str(int(speed_wpm)), "-w", str(out_wav), "--stdin"]
    try:
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=600,
                              start_new_session=True, check=False)
    except subprocess.TimeoutExpired:
        raise InputError("text-to-speech took longer than 10 minutes; synthesize it to an audio file first") from None
    message = proc.stderr.decode("utf-8", errors="replace").strip()
    last = message.splitlines()[-1] if message else "no message"
    if proc.returncode != 0:
        raise InputError(f"{Path(engine).name} failed (voice {voice!r}): {last}")
    if not out_wav.is_file() or out_wav.stat().st_size <= 44:  # 44 bytes: a WAV header alone
        raise InputError(f"{Path(engine).name} produced no speech ({last})")
    return out_wav
