"""A token bucket: at most ``rate`` actions per second on average, ``burst`` at once.

Pure: the caller passes the time (``time.monotonic()`` in the gateway, a number in tests). A tab
gets one for its ``call`` frames (``CALLGUARD_TAB_CALL_RATE``): a manager's tabs report a ring a
few times at most, so a tab that sends more is a bug or a flood, and its extra frames get an
``error`` with code ``rate_limited`` instead of a lookup each; and the tab's next frame is read
only when :meth:`TokenBucket.wait` says a token is there again.
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst  # a new bucket is full
        self.stamp: float | None = None

    def take(self, now: float) -> bool:
        """Spend one token at ``now``; False (nothing spent) when the bucket is empty."""
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        if self.stamp is None or now > self.stamp:
            self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until a token is there (0: one is there now); nothing spent."""
        tokens = self.tokens
        if self.stamp is not None and now > self.stamp:
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
        return max(0.0, (1 - tokens) / self.rate)
