"""Opus encoder settings for voice: the live legs' mixes and the call recordings.

Every leg that hears its own mix needs its own encode each tick, so the encoder is a leg's largest cost,
and its look-ahead is added to every sound the server passes on (the server decodes and encodes again).
Measured with libopus through :mod:`.libopus` (CPU per 20 ms frame, 48 kHz, tone plus noise, wideband,
27 Nov 05:25 UTC, load ~1; ``/tmp``-style script in the issue 10 note):

| application | complexity | look-ahead | mono 32 kbit/s | stereo 48 kbit/s |
|---|---:|---:|---:|---:|
| ``voip`` (SILK for wideband voice) | 0 / 2 / 5 | 6.5 ms | 0.064 / 0.104 / 0.151 ms | 0.136 ms (at 0) |
| ``restricted low-delay`` (CELT only) | 0 / 2 / 5 | 2.5 ms | 0.038 / 0.033 / 0.054 ms | 0.063 ms (at 0) |

- **Live**: restricted low-delay (CELT only, the mode Opus offers for interactive low-latency audio),
  complexity 2, 32 kbit/s mono (Chromium's default Opus rate for voice), wideband (audio up to 8 kHz, "HD
  voice"): 4 ms less delay through the server and a third of the encode of SILK at the same complexity.
  Browsers and aiortc decode any Opus mode; nothing is negotiated differently.
- **Recordings**: the same mode at complexity 0, stereo (one party per channel) at 48 kbit/s: one more
  encode per call every tick, half the size of libopus's automatic stereo rate (~100 kbit/s).
"""

from __future__ import annotations

LIVE_APPLICATION = "lowdelay"  # OPUS_APPLICATION_RESTRICTED_LOWDELAY (PyAV's and libopus.Encoder's name)
LIVE_COMPLEXITY = 2
LIVE_BIT_RATE = 32000
LIVE_BANDWIDTH = "wideband"  # audio up to 8 kHz (HD voice)
RECORDING_COMPLEXITY = 0
RECORDING_BIT_RATE = 48000  # both channels
_CUTOFF_HZ = {"wideband": "8000"}  # FFmpeg's name for libopus's maximum bandwidth


def voice_options(complexity: int = LIVE_COMPLEXITY, bandwidth: str | None = LIVE_BANDWIDTH) -> dict[str, str]:
    """Options for a libopus encoder of voice (PyAV ``options``)."""
    options = {"application": LIVE_APPLICATION, "compression_level": str(complexity)}
    if bandwidth is not None:
        options["cutoff"] = _CUTOFF_HZ[bandwidth]
    return options
