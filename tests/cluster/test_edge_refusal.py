"""What a node answers itself when a frame cannot reach the cluster's leader, and the command-line checks."""

from __future__ import annotations

import pytest
from bargein.signaling.cluster.relay import refusal

from bargein.cli import build_parser


def test_a_request_that_cannot_be_relayed_gets_503_with_the_reason() -> None:
    r = refusal('{"method": "INVITE", "cseq": 4, "to": "queue:support", "call_id": "call-2"}',
                "cluster unavailable: Redis at redis://x cannot be reached")
    assert r is not None
    assert (r["type"], r["method"], r["cseq"], r["status"]) == ("response", "INVITE", 4, 503)
    assert r["reason"].startswith("cluster unavailable: ") and r["call_id"] == "call-2"


@pytest.mark.parametrize("frame", ['{"type": "response", "cseq": 1, "status": 200}', "not json", "[1, 2]"])
def test_responses_and_garbage_get_nothing(frame: str) -> None:
    assert refusal(frame, "cluster unavailable: x") is None


def test_demo_calls_are_refused_in_a_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["serve", "--redis", "redis://127.0.0.1:1/0", "--demo-calls", "2"])
    assert args.func(args) == 2
    assert "--redis" in capsys.readouterr().err
