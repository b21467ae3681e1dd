"""Opus encoder options for voice, shared by the live legs' shared encodes and the call recordings.

libopus's complexity (0-10, default 10) trades CPU for a little quality at a given bit rate. Measured on
this project's 2-core machine (CPU time per 20 ms frame, 48 kHz mono, speech-like tone plus noise,
PyAV ``CodecContext.encode``): 0.54 ms at 10, 0.34 ms at 5, 0.20 ms at 0. Each call encodes one mix per
group of listeners plus one stereo recording frame every tick, so the encoder is the largest codec cost of
a leg; 5 keeps wideband voice quality (what VoIP stacks on phones use) at about 60 % of the default's cost.
"""

from __future__ import annotations

COMPLEXITY = 5


def voice_options() -> dict[str, str]:
    """Options for a libopus encoder of voice (PyAV ``options``)."""
    return {"application": "voip", "compression_level": str(COMPLEXITY)}
