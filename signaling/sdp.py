"""A cheap look at an SDP offer before anything is rung, allocated or negotiated (docs/protocol.md, "Media").

The media path carries exactly one Opus audio stream; an offer it cannot serve is refused with 488
up front instead of being answered with something that cannot work (a PCMU-only answer was noise)
or costing the server a large negotiation (hundreds of audio sections).
"""

from __future__ import annotations

MAX_SECTIONS = 4  # one audio section, and room for a data channel or a declined video
MAX_LINES = 400


class OfferRefused(ValueError):
    """The offer cannot be served; the message is the reason sent with 488."""


def check_offer(sdp: str) -> None:
    """Raise OfferRefused naming the problem, or return when the offer has one audio section with Opus."""
    lines = sdp.splitlines()
    if len(lines) > MAX_LINES:
        raise OfferRefused(f"the offer has {len(lines)} lines: at most {MAX_LINES}")
    sections: list[list[str]] = []
    for line in lines:
        line = line.strip()
        if line.startswith("m="):
            sections.append([line])
            if len(sections) > MAX_SECTIONS:
                raise OfferRefused(f"the offer has more than {MAX_SECTIONS} media sections")
        elif sections:
            sections[-1].append(line)
    audio = [s for s in sections if s[0].startswith("m=audio ")]
    if not audio:
        raise OfferRefused("the offer has no audio section")
    if len(audio) > 1:
        raise OfferRefused(f"the offer has {len(audio)} audio sections: exactly one is supported")
    m_line = audio[0][0].split()
    if len(m_line) < 4 or m_line[1] == "0":
        raise OfferRefused("the offer's audio section is disabled (port 0) or malformed")
    payloads = set(m_line[3:])
    opus = [ln for ln in audio[0] if ln.lower().startswith("a=rtpmap:") and "opus/48000" in ln.lower()
            and ln.split(":", 1)[1].split()[0] in payloads]
    if not opus:
        raise OfferRefused("the offer's audio section has no Opus (opus/48000/2 is the codec this server speaks)")
