"""Time spent in MLflow calls, by kind (the operate benchmark's share of wall time)."""

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class MlflowCalls:
    """Seconds and counts of MLflow calls, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: Counter[str] = Counter()

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Count the time the block takes under ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.counts[name] += 1

    @property
    def total_seconds(self) -> float:
        """Seconds spent in every call."""
        return float(sum(self.seconds.values()))

    def summary(self) -> dict[str, dict[str, float]]:
        """Seconds and calls by name (JSON-ready)."""
        return {
            name: {"seconds": round(self.seconds[name], 4), "calls": self.counts[name]}
            for name in sorted(self.seconds)
        }
