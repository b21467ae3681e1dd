"""A token bucket: ``rate`` requests per second on average, bursts up to ``burst``."""

from __future__ import annotations


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
