"""Opus encoder settings for voice: the live legs' mixes and the call recordings.

libopus's complexity (0-10, default 10) trades CPU for a little quality at a given bit rate. Measured on
this project's 2-core machine (CPU per 20 ms frame, 48 kHz mono at 32 kbit/s, tone plus noise, PyAV
``CodecContext.encode``, 27 Nov, load ~2): about 0.13 ms at 0, 0.15 at 1, 0.18 at 2, 0.19 at 3, 0.24 at 5;
the default 10 measured 0.54 ms against 0.34 at 5 earlier (load ~25). Decoding a frame costs ~0.06 ms. The
encoder is a leg's largest cost: every leg that hears its own mix needs its own encode each tick.

- **Live**: complexity 2 at 32 kbit/s mono (what browsers send for voice: Chromium's default Opus rate),
  wideband (audio up to 8 kHz, "HD voice"): SILK alone codes it, measured 0.107 ms per frame against
  0.138 ms fullband at complexity 2 (0.07 / 0.097 ms at 0), and the listener's decode halves (0.03 ms).
- **Recordings**: complexity 0, wideband, stereo at libopus's automatic rate for two channels: a
  recording is one more encode per call every tick, and the higher rate makes up for the cheaper analysis.
"""

from __future__ import annotations

LIVE_COMPLEXITY = 2
LIVE_BIT_RATE = 32000
LIVE_BANDWIDTH = "wideband"  # audio up to 8 kHz (HD voice): SILK alone, about 0.7x the encode and half the decode
RECORDING_COMPLEXITY = 0
_CUTOFF_HZ = {"wideband": "8000"}  # FFmpeg's name for libopus's maximum bandwidth


def voice_options(complexity: int = LIVE_COMPLEXITY, bandwidth: str | None = LIVE_BANDWIDTH) -> dict[str, str]:
    """Options for a libopus encoder of voice (PyAV ``options``)."""
    options = {"application": "voip", "compression_level": str(complexity)}
    if bandwidth is not None:
        options["cutoff"] = _CUTOFF_HZ[bandwidth]
    return options
