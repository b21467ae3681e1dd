"""The token bucket behind the per-connection request limit."""

from bargein.signaling.ratelimit import TokenBucket, default_burst
from hypothesis import given
from hypothesis import strategies as st


def test_burst_then_refused_then_refilled() -> None:
    b = TokenBucket(rate=10, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(0.05)  # half a token is not enough
    assert b.take(0.1)  # one token after 1/rate seconds
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]  # refills up to the burst only


def test_default_burst_is_two_seconds_but_at_least_five() -> None:
    assert default_burst(50) == 100 and default_burst(1) == 5


@given(rate=st.floats(0.5, 1000), burst=st.integers(1, 50),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, gaps: list[float]) -> None:
    b = TokenBucket(rate, burst, now=0.0)
    now, taken = 0.0, 0
    for gap in gaps:
        now += gap
        taken += b.take(now)
        assert taken <= burst + rate * now + 1e-6
