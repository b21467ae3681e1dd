"""Who hears whom in one call, by a distinct tone per party (single-bin DFT of what each leg received)."""

from __future__ import annotations

import asyncio

from bargein.signaling.webrtc_client import ClientLeg

HEARD, SILENT = -40.0, -50.0  # tones are sent at -12 dBFS; -40 leaves room for gaps on a busy machine
TONES = {"customer": 500.0, "agent": 750.0, "supervisor": 1650.0}


async def hears(legs: dict[str, ClientLeg]) -> dict[str, set[str]]:
    """Whose tone each party hears in fresh audio (an ambiguous level shows as ``"role? -45 dB"``)."""
    await asyncio.gather(*(leg.fresh(30, timeout=90) for leg in legs.values()))
    out: dict[str, set[str]] = {}
    for listener, leg in legs.items():
        heard: set[str] = set()
        for speaker in legs:
            db = leg.level(TONES[speaker])
            if speaker == listener:
                if db > SILENT:
                    heard.add(f"itself {db:.0f} dB")
            elif db > HEARD:
                heard.add(speaker)
            elif db > SILENT:
                heard.add(f"{speaker}? {db:.0f} dB")
        out[listener] = heard
    return out


async def settles(legs: dict[str, ClientLeg], want: dict[str, set[str]], attempts: int = 20) -> dict[str, set[str]]:
    """What is heard once audio from before a change has drained (failure guard: a wrong route never settles)."""
    got: dict[str, set[str]] = {}
    for _ in range(attempts):
        got = await hears(legs)
        if got == want:
            break
    return got


def expected(mode: str | None, supervised: bool = True) -> dict[str, set[str]]:
    """The routing table of a call with a supervisor in ``mode`` (None: no supervisor)."""
    out = {"customer": {"agent"}, "agent": {"customer"}}
    if mode is not None:
        out["supervisor"] = {"customer", "agent"}
        if mode == "barge":
            out["customer"].add("supervisor")
        if mode in ("barge", "coach"):
            out["agent"].add("supervisor")
    return out
