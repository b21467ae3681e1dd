"""Token buckets: ``rate`` requests per second on average, bursts up to ``burst``; one per connection, and
tables of them per user and per remote address that outlive connections (docs/security.md)."""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.refilled = burst, now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; refill for the time elapsed since the last call first."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def default_burst(rate: float) -> float:
    """Two seconds' worth of requests, and never fewer than five (a sign-in needs a few at once)."""
    return max(5.0, 2 * rate)


class BucketTable:
    """One bucket per key (a user, an address), kept across connections so reconnecting resets nothing.

    Bounded: the least recently used keys are forgotten past ``max_keys`` (a forgotten key starts full,
    which is the same as a key that has been idle long enough to refill).
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> TokenBucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return b

    def take(self, key: str, now: float) -> bool:
        return self._bucket(key, now).take(now)

    def exhausted(self, key: str, now: float) -> bool:
        """True when ``key`` has no token left right now (nothing is spent)."""
        b = self._buckets.get(key)
        if b is None:
            return False
        return min(b.burst, b.tokens + max(0.0, now - b.refilled) * b.rate) < 1

    def __len__(self) -> int:
        return len(self._buckets)
