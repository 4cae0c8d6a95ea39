"""The SLO's per-family prices: sums remembered per combination give the computed figures."""

import pytest

from steward.errors import ConfigError
from steward.simulators.costs import MAX_REMEMBERED_COMBINATIONS, SloConfig


def _expected(slo: SloConfig, families: tuple[str, ...], requests: float) -> tuple[float, float]:
    service = float(sum(slo.families[f].service_ms for f in families))
    cost = float(sum(slo.families[f].inference_per_1k for f in families) * requests / 1000.0)
    return service, cost


@pytest.mark.parametrize("families", [("linear",), ("gbm",), ("gbm", "linear"), ("tree", "gbm")])
def test_remembered_sums_equal_the_prices(families: tuple[str, ...]) -> None:
    slo = SloConfig()
    for _ in range(2):  # computed, then remembered
        service, cost = _expected(slo, families, 1.3e6)
        assert slo.service_ms(families) == service
        assert slo.inference_cost(families, 1.3e6) == cost
        assert slo.inference_cost(list(families), 1.3e6) == cost  # type: ignore[arg-type]
    assert slo.latency_p99_ms(families, 2e6) > slo.latency_p99_ms(families, 1e5)


def test_an_unknown_family_still_fails_by_name_after_others_were_remembered() -> None:
    slo = SloConfig()
    slo.inference_cost(("gbm",), 1e6)
    with pytest.raises(ConfigError, match="quantum"):
        slo.inference_cost(("gbm", "quantum"), 1e6)
    with pytest.raises(ConfigError, match="quantum"):
        slo.simpler_family("quantum")


def test_simpler_family_is_the_most_complex_of_the_simpler_ones() -> None:
    slo = SloConfig()
    for family, cost in slo.families.items():
        below = [
            (c.complexity, n) for n, c in slo.families.items() if c.complexity < cost.complexity
        ]
        expected = max(below)[1] if below else None
        assert slo.simpler_family(family) == expected
        assert slo.simpler_family(family) == expected  # remembered
    assert slo.simpler_family("gbm") == "linear"  # tree is as complex as gbm, not simpler


def test_remembered_combinations_are_bounded() -> None:
    slo = SloConfig()
    names = list(slo.families)
    for length in range(1, 40):
        slo.service_ms(tuple(names[i % len(names)] for i in range(length)) * 8)
    assert len(slo._sums) <= MAX_REMEMBERED_COMBINATIONS
