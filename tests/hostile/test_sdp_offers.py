"""Offers the media path cannot serve are refused with 488 before anything is rung (issue 9 items 2 and 10)."""

import pytest
from bargein.signaling.sdp import OfferRefused, check_offer
from helpers.inprocess import Harness, offer
from hypothesis import given
from hypothesis import strategies as st

AUDIO = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
HEAD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
PCMU = HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"
MANY = HEAD + AUDIO * 300  # ~20 KB, under the SDP size limit
VIDEO_ONLY = HEAD + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"


@pytest.mark.parametrize(("sdp", "why"), [(MANY, "lines"), (HEAD + AUDIO * 2, "2 audio sections"), (HEAD + AUDIO * 5, "media sections"),
                                          (VIDEO_ONLY, "no audio"), (PCMU, "no Opus"), ("garbage", "no audio")])
def test_customer_offer_refused_with_488_and_nobody_is_rung(sdp: str, why: str) -> None:
    h = Harness()
    agent = h.client("agent1", state="available")
    customer = h.client("customer1")
    r = customer.request("INVITE", to="queue:support", sdp=sdp)
    assert r["status"] == 488 and why in r["reason"], r
    assert not h.core.calls
    # no provisional ever follows the final answer, and the agent was never offered a call
    assert not [x for x in customer.inbox if x.get("status") in (100, 180, 183)]
    assert not [x for x in agent.inbox if x.get("method") == "INVITE"]
    r = customer.request("INVITE", to="queue:support", sdp=offer("retry"))
    assert r["status"] == 180


def test_a_good_offer_passes() -> None:
    check_offer(offer("x"))
    check_offer(HEAD + AUDIO + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")


@given(st.text(max_size=2000))
def test_garbage_offers_only_ever_raise_offer_refused(sdp: str) -> None:
    try:
        check_offer(sdp)
    except OfferRefused:
        pass
