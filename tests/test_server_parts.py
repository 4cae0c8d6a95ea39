"""Parts of the agent server with real inputs: the portfolio schema against FIELD_SPECS,
the numpy forward against the torch policy, the exploration floor against EpsilonSoft,
metric labels, settings checks."""

import asyncio
import dataclasses
import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from test_server_harness import card_env

from steward.agent.decision_log import observation_matrix
from steward.agent.policies.base import DecisionContext, EpsilonSoft
from steward.agent.policies.ppo import load_agent
from steward.agent.rollout import shielded_probabilities
from steward.agent.server.audit.log import AuditLog, AuditUnavailableError
from steward.agent.server.audit.sql import json_cell
from steward.agent.server.decision.batching import DecisionBatcher, DecisionJob
from steward.agent.server.decision.decide import Decider, DecisionIds, draw, with_floor
from steward.agent.server.decision.fast_forward import NumpyActor, policy_forward, probe_inputs
from steward.agent.server.decision.policy_store import LoadedPolicy, load_policy
from steward.agent.server.decision.state import ServiceState, ServiceStates
from steward.agent.server.http.metrics import reason_kind
from steward.agent.server.http.schemas import (
    EXAMPLE_PORTFOLIO,
    OPTIONAL_FIELDS,
    Portfolio,
    check_against_specs,
)
from steward.agent.server.settings import ServerSettings
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import Shield, ShieldConfig, ShieldDecision
from steward.errors import ConfigError
from steward.monitoring.portfolio import FIELD_SPECS, NAN_OK, ObservedPortfolio
from steward.simulators.costs import SloConfig


def test_portfolio_schema_matches_the_observed_portfolio_and_its_specs() -> None:
    check_against_specs()
    schema = Portfolio.model_json_schema()
    optional = OPTIONAL_FIELDS  # clients from before these fields existed omit them
    assert set(schema["required"]) == {f.name for f in dataclasses.fields(ObservedPortfolio)} - (
        optional
    )
    without = {k: v for k, v in EXAMPLE_PORTFOLIO.items() if k not in optional}
    observed = Portfolio.model_validate(without).to_observed()
    assert math.isnan(observed.label_alarm_peak_z)
    for name, spec in FIELD_SPECS.items():
        description = schema["properties"][name]["description"]
        assert spec.description[1:] in description
        if spec.unit not in ("bool", "families"):
            assert f"Unit: {spec.unit}" in description and f"{spec.upper:g}]" in description
        assert ("null" in description) == (name in NAN_OK)
    assert Portfolio.model_validate(EXAMPLE_PORTFOLIO).to_observed().live_families == "linear"


def test_null_becomes_nan_only_where_a_field_may_be_missing() -> None:
    values = {**EXAMPLE_PORTFOLIO, **{name: None for name in NAN_OK}}
    observed = Portfolio.model_validate(values).to_observed()
    assert all(np.isnan(getattr(observed, name)) for name in NAN_OK)


@pytest.mark.parametrize("deterministic", [False, True])
def test_numpy_forward_equals_the_torch_policy(policy_path: Path, deterministic: bool) -> None:
    agent = load_agent(policy_path, deterministic=deterministic)
    env = card_env(policy_path, "label_corruption")
    size = env.encoder.size
    forward, name = policy_forward(agent, size)
    assert name == "numpy"
    observation, _ = env.reset(seed=4)
    observations, masks = [observation], [env.action_masks()]
    for day in range(10):
        observation, *_ = env.step(day % 7)
        observations.append(observation)
        masks.append(env.action_masks())
    batch, mask_batch = np.stack(observations), np.stack(masks)
    np.testing.assert_allclose(
        forward(batch, mask_batch), agent.probabilities_batch(batch, mask_batch), atol=1e-6
    )
    actor = NumpyActor.from_agent(agent)
    assert actor is not None
    probes, probe_masks = probe_inputs(size, seed=9)
    np.testing.assert_allclose(
        actor.probabilities_batch(probes, probe_masks),
        agent.probabilities_batch(probes, probe_masks),
        atol=1e-6,
    )


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.5])
def test_exploration_floor_is_epsilon_soft(policy_path: Path, epsilon: float) -> None:
    agent = load_agent(policy_path)
    env = card_env(policy_path, "latency_pressure")
    observation, _ = env.reset(seed=2)
    context = DecisionContext(observation, env.report.observed, env.action_masks())
    expected = EpsilonSoft(agent, epsilon).action_probabilities(context)
    base = agent.probabilities_batch(observation, env.action_masks())[0]
    np.testing.assert_allclose(with_floor(base, env.action_masks(), epsilon), expected)


def test_decisions_match_the_numpy_reference(
    policy_path: Path, slo: SloConfig, shield_config: ShieldConfig
) -> None:
    """The server's pure-Python floor, draw and propensities are the reference's numbers."""
    epsilon, seed = 0.1, 3
    policy = load_policy(policy_path, slo, epsilon, deterministic=False)
    shield = Shield(shield_config, slo)
    decider, reference_rng = Decider(shield, seed), np.random.default_rng(seed)
    state = ServiceState(encoder=policy.new_encoder())
    env = LifecycleEnv(scenario="label_corruption")
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    vetoes = 0
    for day in range(40):
        portfolio = env.report.observed
        observed = decider.observe(portfolio, state)
        base = rng.dirichlet(np.full(7, 0.3))  # any distribution, zeros included
        base[rng.random(7) < 0.2] = 0.0
        base /= base.sum()
        decision = decider.decide("svc", env_time(day), observed, base, state, policy)
        mask = observed.shield.mask
        allowed = mask.astype(np.float64)
        uniform = allowed / allowed.sum()  # EpsilonSoft's mixture
        mixed = np.asarray((1.0 - epsilon) * base + epsilon * uniform)
        mixed = mixed / mixed.sum()
        cumulative = np.cumsum(mixed)
        u = float(reference_rng.random())
        proposed = min(int(np.searchsorted(cumulative, u * cumulative[-1], side="right")), 6)
        executed = shielded_probabilities(
            mixed, observed.shield, portfolio.human_hold, shield.apply
        )
        record = decision.record
        # the same float64 operations; numpy may add the seven terms in another order
        np.testing.assert_allclose(record.proposal_probabilities, mixed, rtol=1e-14, atol=0)
        np.testing.assert_allclose(record.probabilities, executed, rtol=1e-14, atol=0)
        assert record.proposed_action == proposed
        assert record.propensity == record.probabilities[record.executed_action]
        assert record.step == day and state.next_step == day + 1
        vetoes += record.vetoed
        env.step(record.proposed_action)
    assert vetoes > 0  # the veto path ran


def test_an_action_that_takes_all_the_mass_has_a_propensity_of_at_most_one(
    slo: SloConfig, shield_config: ShieldConfig
) -> None:
    """Only wait allowed (a page over budget, no other change possible): every proposal
    executes wait, and the seven probabilities' sum exceeds 1 in its last bit."""
    proposal = [0.550965772844177, 0.07454987586617767, 0.07358057323502128]
    proposal += [0.0782534223019261, 0.0736528796278744, 0.07737207824296766]
    proposal += [0.07162539788185603]
    total = 0.0
    for p in proposal:
        total += p
    assert total > 1.0
    mask = np.zeros(7, dtype=bool)
    mask[0] = True
    decision = ShieldDecision(mask, {a: ["vetoed"] for a in range(1, 7)})
    shield = Shield(shield_config, slo)
    server = Decider(shield, 0).executed_probabilities(proposal, decision, mask.tolist(), False)
    reference = shielded_probabilities(np.array(proposal), decision, False, shield.apply)
    assert server == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert reference.tolist() == server


def env_time(day: int) -> "datetime":
    return datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=day)


def test_decision_ids_are_unique_time_ordered_version_7_uuids() -> None:
    new_id = DecisionIds()
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(3 * DecisionIds.BLOCK // 10 + 5)]  # several blocks
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(hex=text)
        assert parsed.hex == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after  # RFC 9562: the Unix time in ms first
    assert [text[:12] for text in ids] == sorted(text[:12] for text in ids)
    assert len({text[12:] for text in ids}) == len(ids)  # random beyond the timestamp


@pytest.mark.parametrize(
    "value",
    [
        [0.1, 1e-05, 1e20, -0.0, 5e-324, 0.38811492919921875],
        {"a": math.nan, "b": 1.5, "c": "x"},
        {"inf": math.inf, "ok": True, "none": None},
        {"big": 2**70, "small": -3},
        {"families": "null", "list": [1, 2]},
    ],
)
def test_json_cells_read_back_as_json_dumps_writes_them(value: object) -> None:
    cell = json_cell(value)
    expected = json.loads(json.dumps(value))
    got = json.loads(cell)
    assert repr(got) == repr(expected)  # NaN stays NaN (not null), floats round-trip


@pytest.mark.parametrize(
    "values",
    [
        [0.9113, 1.0, -0.025, 1e-45, 3.4028235e38, -0.0, 0.1, 1 / 3],
        [0.5, math.nan, 2.0],  # orjson would write null: the json.dumps cell keeps NaN
    ],
)
def test_float32_observation_cells_read_back_to_the_same_float32s(values: list[float]) -> None:
    observation = np.asarray(values, dtype=np.float32)
    cell = json_cell(observation)
    back = observation_matrix([json.loads(cell)])[0]
    np.testing.assert_array_equal(back, observation.astype(np.float64))
    assert back.dtype == np.float64
    if not np.isnan(observation).any():  # each value's shortest float32 decimal
        assert len(cell) < len(json.dumps(observation.tolist()))


def test_draw_never_picks_an_action_without_mass() -> None:
    probabilities = np.array([0.0, 0.5, 0.0, 0.0, 0.5, 0.0, 0.0])
    rng = np.random.default_rng(0)
    drawn = {draw(probabilities, float(u)) for u in rng.random(2000)}
    assert drawn == {1, 4}
    assert draw(probabilities, 0.0) == 1 and draw(probabilities, 0.999999) == 4


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("rate limit: last change 1.0 days ago (< 2.0)", "rate limit"),
        ("label health: labels arrive at 0.10 of the expected rate", "label health"),
        ("too few labels in the window (12 < 300)", "too few labels in the window"),
        ("no simpler model family", "no simpler model family"),
        ("", "other"),
    ],
)
def test_veto_reason_labels_drop_the_numbers(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_service_states_drop_the_least_recently_used() -> None:
    states = ServiceStates(capacity=2)
    first = states.get("a")
    states.get("b")
    assert states.get("a") is first  # a is now the most recently used
    states.get("c")
    assert len(states) == 2 and states.get("a") is first  # b was dropped, not a
    assert not states.get("b").ready_for(4)  # b comes back empty: rebuilt from the audit trail


def test_settings_refuse_short_tokens_and_bad_modes(tmp_path: Path) -> None:
    path, url = tmp_path / "policy.zip", "sqlite:///x.db"
    with pytest.raises(ConfigError, match="api_token"):
        ServerSettings(path, url, api_token="short")
    with pytest.raises(ConfigError, match="sqlite_synchronous"):
        ServerSettings(path, url, sqlite_synchronous="SOMETIMES")
    with pytest.raises(ConfigError, match="epsilon"):
        ServerSettings(path, url, epsilon=1.5)


def test_batcher_invalidates_the_state_when_nothing_is_committed(
    policy_path: Path, slo: SloConfig, shield_config: ShieldConfig, tmp_path: Path
) -> None:
    """A cancelled request, a failed forward or a refused write leave no half decision."""
    policy = load_policy(policy_path, slo, 0.1, deterministic=False)
    decider = Decider(Shield(shield_config, slo), seed=1)
    audit = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    audit.open()
    batcher = DecisionBatcher(decider, audit)
    env = LifecycleEnv(scenario="label_corruption")
    env.reset(seed=5)
    when = env_time(0)

    def fresh() -> ServiceState:
        return ServiceState(encoder=policy.new_encoder())

    def submit(used: LoadedPolicy, service_id: str, state: ServiceState) -> DecisionJob:
        observed = decider.observe(env.report.observed, state)
        return batcher.submit(used, service_id, when, observed, state)

    async def scenario() -> None:
        # two services decided in one flush: both committed, distinct rows
        states = [fresh(), fresh()]
        jobs = [submit(policy, f"ok{i}", s) for i, s in enumerate(states)]
        decisions = [await job.future for job in jobs]
        assert batcher.last_batch_size == 2 and all(s.encoder is not None for s in states)
        assert [s.next_step for s in states] == [1, 1]
        # cancelled before the flush: nothing decided, the state is rebuilt next time
        state = fresh()
        job = submit(policy, "gone", state)
        job.future.cancel()
        await asyncio.sleep(0)
        assert not job.taken and state.encoder is None and state.next_step == 0
        # the forward fails
        broken = dataclasses.replace(policy, forward=lambda *_: 1 / 0)
        state = fresh()
        job = submit(broken, "bad", state)
        with pytest.raises(ZeroDivisionError):
            await job.future
        assert state.encoder is None
        # the audit trail refuses the write (a step the service already has)
        state = fresh()
        job = submit(policy, "ok0", state)  # its step 0 is stored already
        with pytest.raises(AuditUnavailableError):
            await job.future
        assert job.taken and state.encoder is None
        stored = {d.record.decision_id for d in decisions}
        with audit.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT decision_id, service_id FROM decisions")).all()
        assert {row[0] for row in rows} == stored and len(rows) == 2

    try:
        asyncio.run(scenario())
    finally:
        audit.close()


def test_a_row_stored_before_the_label_cohort_fields_replays_with_nan() -> None:
    """Audit rows written before the label-cohort fields existed still rebuild a service's
    state (the fields feed the shield only); a missing required field does not."""
    from steward.agent.decision_log import logged_portfolio
    from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO

    old_row = {
        k: v
        for k, v in EXAMPLE_PORTFOLIO.items()
        if k not in ("label_shift_z", "label_agreement_z", "label_alarm_peak_z")
    }
    replayed = logged_portfolio(old_row)
    assert math.isnan(replayed.label_shift_z) and math.isnan(replayed.label_agreement_z)
    assert math.isnan(replayed.label_alarm_peak_z)
    assert replayed.labels_last_day == EXAMPLE_PORTFOLIO["labels_last_day"]
    with pytest.raises(TypeError):
        logged_portfolio({k: v for k, v in old_row.items() if k != "labels_in_window"})
