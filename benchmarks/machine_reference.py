"""How fast this machine is today, on the operations the world's speed targets were set on.

The world's speed targets come from the project's original design brief, measured on a
reference machine on which "a LogisticRegression fit
on 2k rows takes about 2 ms, HistGradientBoosting with 50 iterations about 75 ms, and
predict_proba on 1k rows 0.1 ms and 1.2 ms". These machines are shared and their speed
moves by half from day to day, so a benchmark that compares the world with those targets
also times the same four operations in the same run: a ratio above 1 means today's
machine is slower than the reference, and a target met on it would be met there too.

The data: 2,000 training rows and 1,000 scoring rows of 8 standard-normal features, the
label a noisy linear function of the first (seeded). One BLAS/OpenMP thread, as in the
world. Each timing is the median of ``repeats`` calls after one warm-up call.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

FEATURES = 8
TRAIN_ROWS = 2_000
SCORE_ROWS = 1_000


@dataclass(frozen=True)
class Reference:
    """One reference operation: what it is and the reference machine's time for it."""

    name: str
    reference_ms: float
    repeats: int


REFERENCES = (
    Reference("LogisticRegression fit, 2k rows", 2.0, 30),
    Reference("HistGradientBoosting fit, 50 iterations, 2k rows", 75.0, 7),
    Reference("LogisticRegression predict_proba, 1k rows", 0.1, 200),
    Reference("HistGradientBoosting predict_proba, 1k rows", 1.2, 50),
)


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up: imports, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def reference_timings(seed: int = 0) -> dict[str, float]:
    """Median milliseconds of each reference operation on this machine now."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(TRAIN_ROWS, FEATURES))
    y = (x[:, 0] + rng.normal(size=TRAIN_ROWS) > 0).astype(np.int64)
    scored = rng.normal(size=(SCORE_ROWS, FEATURES))

    def linear() -> LogisticRegression:
        return LogisticRegression(max_iter=200).fit(x, y)

    def boosted() -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(max_iter=50, random_state=seed).fit(x, y)

    with threadpool_limits(1):
        fitted_linear, fitted_boosted = linear(), boosted()
        calls: list[Callable[[], Any]] = [
            linear,
            boosted,
            lambda: fitted_linear.predict_proba(scored),
            lambda: fitted_boosted.predict_proba(scored),
        ]
        return {
            ref.name: _median_ms(call, ref.repeats)
            for ref, call in zip(REFERENCES, calls, strict=True)
        }


def slowdown(timings: dict[str, float]) -> float:
    """The median ratio of today's time to the reference machine's over the reference operations."""
    return float(np.median([timings[ref.name] / ref.reference_ms for ref in REFERENCES]))


def format_reference(timings: dict[str, float]) -> str:
    """The reference timings beside the reference machine's, and the machine's median slowdown."""
    lines = ["this machine now, on the reference operations (median ms; the reference machine's):"]
    for ref in REFERENCES:
        ms, ref_ms = timings[ref.name], ref.reference_ms
        lines.append(
            f"  {ref.name:<50} {ms:7.2f} ms  (reference: {ref_ms:g} ms, {ms / ref_ms:.2f}x)"
        )
    lines.append(
        f"  median: {slowdown(timings):.2f}x the reference machine's time"
        " (above 1: slower than the machine the targets were set on)"
    )
    return "\n".join(lines)
