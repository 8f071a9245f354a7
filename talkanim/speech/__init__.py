"""Speech -> motion: a portrait talks from speech alone (`talkanim speak`).

The stage turns speech (any audio ffmpeg reads, or text through an offline TTS) into the same
representation a driver's landmark track gives: a `LandmarkTrack` of a canonical template face
(`face.py`) whose mouth follows the speech and whose head, eyelids, brows and gaze follow idle
motion or a pose video. `motion.retarget` and the renderer take it from there, unaware of
where it came from.
"""
