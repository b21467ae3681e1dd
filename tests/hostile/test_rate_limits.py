"""Limits that reconnecting does not reset (issue 9 item 8): per user and per address, and failed sign-ins."""

from bargein.signaling.ratelimit import BucketTable
from helpers.inprocess import Harness, offer
from hypothesis import given
from hypothesis import strategies as st


def test_a_user_reconnecting_does_not_get_a_fresh_rate_limit() -> None:
    h = Harness(max_requests_per_second=5)
    statuses = []
    for _ in range(20):  # every connection is new; the user is the same
        c = h.client("customer1")
        statuses += [c.request("OPTIONS")["status"] for _ in range(3)]
        h.apply(h.core.disconnect(c.conn))
    assert 429 in statuses
    h.clock.t += 10  # the user's bucket refills with time
    assert h.client("customer1").request("OPTIONS")["status"] == 200


def test_many_connections_from_one_address_share_one_limit() -> None:
    h = Harness(max_requests_per_second=1000, max_requests_per_second_per_address=20)
    statuses = []
    for i in range(10):
        c = h.connection(remote="198.51.100.7")
        statuses += [c.request("OPTIONS")["status"] for _ in range(6)]
        assert i >= 0
    assert statuses.count(429) >= 10
    assert h.connection(remote="203.0.113.9").request("OPTIONS")["status"] == 401  # another address is served


def test_failed_signins_are_slowed_per_address_and_a_good_token_from_elsewhere_works() -> None:
    h = Harness(failed_signins_per_minute=6, failed_signins_burst=3, max_requests_per_second=1000)
    statuses = []
    for _ in range(10):
        c = h.connection(remote="198.51.100.7")
        statuses.append(c.request("REGISTER", token="guess")["status"])
    assert statuses[:3] == [401, 401, 401] and set(statuses[3:]) == {429}
    # even the right token waits from that address; from another it works at once
    assert h.connection(remote="198.51.100.7").request("REGISTER", token="agent1")["status"] == 429
    assert h.connection(remote="203.0.113.9").request("REGISTER", token="agent1")["status"] == 200
    h.clock.t += 20  # two more failures' worth refilled
    assert h.connection(remote="198.51.100.7").request("REGISTER", token="customer1")["status"] == 200


def test_unanswerable_invites_after_reconnects_are_limited() -> None:
    h = Harness(max_requests_per_second=5)
    sent = refused = 0
    for _ in range(50):
        c = h.client("customer1")
        for _ in range(4):
            r = c.request("INVITE", to="queue:nowhere", sdp=offer("x"))
            sent += 1
            refused += r["status"] == 429
        h.apply(h.core.disconnect(c.conn))
    assert refused > sent // 2


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.floats(0, 5)), max_size=200))
def test_bucket_table_stays_bounded_and_never_goes_negative(events: list[tuple[str, float]]) -> None:
    t = BucketTable(rate=2, burst=3, max_keys=4)
    now = 0.0
    for key, dt in events:
        now += dt
        t.take(key, now)
        assert len(t) <= 4
        assert all(b.tokens >= 0 for b in t._buckets.values())
