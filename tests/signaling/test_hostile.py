"""Hypothesis: thousands of hostile frames never break the core or the server; calls still work after."""

import json

import aiohttp
from bargein.signaling.core import Send
from bargein.signaling.messages import METHODS, REASONS
from helpers.inprocess import Harness, start_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_server import full_call, server  # noqa: F401  (fixture)

FIELDS = ["method", "cseq", "type", "token", "to", "sdp", "call_id", "mode", "action", "target", "value",
          "state", "event", "status", "reason"]
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=False),
                        st.text(max_size=30))
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
field_value = st.one_of(json_value, st.sampled_from(sorted(METHODS) + ["request", "response", "monitor", "barge",
                                                                       "queue:support", "call:call-1", "call-1",
                                                                       "agent1", "supervisor1", "mode", "drop"]))
message = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), field_value, max_size=8),
    st.builds(lambda m, c, extra: {"method": m, "cseq": c, **extra},
              st.sampled_from(sorted(METHODS) + ["FOO", "", "invite"]), st.integers(-5, 10**6),
              st.dictionaries(st.sampled_from(FIELDS[2:]), field_value, max_size=5)),
)
frame = st.one_of(message.map(json.dumps), st.text(max_size=200), st.binary(max_size=100), message)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(frame, min_size=1, max_size=80), min_size=1, max_size=4))
def test_hostile_frames_against_the_core(batches: list[list]) -> None:
    h = Harness(max_requests_per_second=1e9)
    _, _, call_id = start_call(h)
    conns = [h.client(t) for t in ("supervisor1", "agent2")] + [None]
    for i, batch in enumerate(batches):
        client = conns[i % len(conns)]
        conn = client.conn if client else f"anon{i}"
        if client is None:
            h.core.connect(conn)
        for raw in batch:
            for action in h.apply(h.core.handle(conn, raw)):
                if isinstance(action, Send) and action.message.get("type") == "response":
                    assert action.message["status"] in REASONS, action.message
                    assert action.message["status"] != 500, action.message
    # the core still serves a complete call with supervision
    h.clock.t += 100
    c, a, call2 = start_call(h, customer="customer3", agent="agent3")
    s = h.client("supervisor2")
    assert s.request("INVITE", to=f"call:{call2}")["status"] == 200
    assert s.request("INFO", call_id=call2, action="mode", mode="barge")["status"] == 200
    assert a.request("BYE", call_id=call2)["status"] == 200


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                          HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=st.lists(frame, min_size=1500, max_size=1500))
async def test_thousands_of_hostile_frames_over_a_real_socket(server, frames: list) -> None:  # noqa: F811
    srv, base = server
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(base + "/ws")
        for raw in frames:
            if isinstance(raw, dict):
                await ws.send_json(raw)
            elif isinstance(raw, bytes):
                await ws.send_bytes(raw)
            else:
                await ws.send_str(raw)
        await ws.send_json({"method": "OPTIONS", "cseq": 2**53})
        while True:  # everything got an answer and the socket is still open
            msg = await ws.receive_json(timeout=30)
            if msg.get("cseq") == 2**53:
                break
        await ws.close()
        await full_call(srv, session, base)
