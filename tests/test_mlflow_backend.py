"""The MLflow Model Registry backend, on a real MLflow store in a temporary folder.

The same plan of actions runs on the simulator's backend and on the MLflow one: the
portfolios are equal every day, the registry's state read back from MLflow alone equals
the simulator's, every version carries its lineage, and the model the ``champion``
alias points at, loaded from the registry, gives the scores that were served.
"""

import dataclasses
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from steward.agent.closed_loop import same_portfolio
from steward.backends.base import ActionRequest
from steward.backends.estimators import EstimatorFamilies
from steward.backends.mlflow_backend import OperatedWorld, local_settings, operated_world
from steward.backends.mlflow_state import MlflowStateReader, read_registry_state
from steward.backends.pagers import CommandPager, PageError, WebhookPager, make_pager
from steward.errors import ConfigError
from steward.monitoring.state import RegistryState, VersionCard, card_to_dict
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_scenario
from steward.simulators.costs import SloConfig
from steward.simulators.episode import version_card
from steward.simulators.models.backend import make_estimator
from steward.simulators.operations import Pager

FAMILIES = Path(__file__).resolve().parents[1] / "steward/configs/backend/families/default.yaml"
PLAN = {
    3: Action.RETRAIN,
    5: Action.RECALIBRATE,
    7: Action.ENSEMBLE,
    9: Action.ROLLBACK,
    11: Action.ESCALATE,
    13: Action.SIMPLIFY,
    15: Action.RETRAIN,  # loses its canary: a rejected version
}


@pytest.fixture(scope="module")
def families() -> EstimatorFamilies:
    """The default families (the simulator's estimators)."""
    return EstimatorFamilies(yaml.safe_load(FAMILIES.read_text()))


def elec2_world(
    kind: str,
    slo: SloConfig,
    families: EstimatorFamilies,
    folder: Path,
    name: str,
    pager: Pager | None = None,
    days: int = 17,
) -> OperatedWorld:
    scenario = dataclasses.replace(load_scenario("elec2"), horizon_days=days)
    settings = local_settings(folder, name) if kind == "mlflow" else None
    operated = operated_world(kind, scenario, slo, families, settings, pager)
    operated.world.reset(seed=3)
    return operated


def as_json(card: VersionCard) -> str:
    """A card as text (NaN and arrays compare as written)."""
    return json.dumps(card_to_dict(card))


def state_json(state: RegistryState) -> str:
    """A registry state as text."""
    fields = {k: v for k, v in vars(state).items() if k not in ("live", "previous", "cards")}
    cards = {str(k): card_to_dict(state.cards[k]) for k in sorted(state.cards)}
    previous = None if state.previous is None else card_to_dict(state.previous)
    return json.dumps([fields, card_to_dict(state.live), previous, cards])


def test_default_families_are_the_simulators_estimators(families: EstimatorFamilies) -> None:
    for family in ("linear", "gbm", "tree", "naive_bayes"):
        for seed in (0, 11):
            built, simulator = families.build(family, seed), make_estimator(family, seed)
            assert type(built) is type(simulator)
            assert built.get_params() == simulator.get_params()


def test_every_action_on_mlflow_matches_the_simulator(
    slo: SloConfig, families: EstimatorFamilies, mlflow_folder: Path
) -> None:
    name = "parity"
    real = elec2_world("mlflow", slo, families, mlflow_folder, name)
    simulated = elec2_world("simulator", slo, families, mlflow_folder, name)
    client = MlflowClient(real.settings.tracking_uri, real.settings.tracking_uri)
    served_kinds: set[str] = set()
    while not real.world.done:
        action = PLAN.get(real.world.day, Action.WAIT)
        report = real.world.step(action)
        expected = simulated.world.step(action)
        assert same_portfolio(report.observed, expected.observed) == []
        state = real.backend.state().registry  # from MLflow alone
        truth = simulated.world.state.registry_state()
        for field in ("change_in_flight", "human_hold", "last_change_day", "acknowledgements"):
            assert getattr(state, field) == getattr(truth, field), field
        np.testing.assert_equal(state.last_page_day, truth.last_page_day)  # NaN: no page yet
        assert as_json(state.live) == as_json(version_card(real.world.registry.live))
        assert state.live.families == truth.live.families
        assert (state.previous is None) == (truth.previous is None)
        live = real.world.registry.live
        log = real.world.log
        rows = np.flatnonzero(log.version[: log.n] == live.version_id)[-200:]
        if live.kind not in served_kinds and rows.size:  # the champion, loaded back, served these
            served_kinds.add(live.kind)
            champion = mlflow.sklearn.load_model(f"models:/{name}@champion")
            scores = champion.predict_proba(log.features[rows])[:, 1]
            np.testing.assert_array_equal(scores, log.score_live[rows])
    assert served_kinds == {"fit", "calibrated", "ensemble"}
    assert real.backend.state().registry.last_page_day == 11.0  # the plan's page
    reread = read_registry_state(real.settings.tracking_uri, name)  # a fresh reader: URI + name
    assert state_json(reread) == state_json(real.backend.state().registry)
    # the registry's record: aliases, lineage, outcomes
    model = client.get_registered_model(name)
    registry = real.world.registry
    assert int(model.aliases["champion"]) == registry.live.version_id
    assert registry.previous is not None
    assert int(model.aliases["rollback"]) == registry.previous.version_id
    versions = {int(v.version): v for v in client.search_model_versions(f"name='{name}'")}
    assert sorted(versions) == sorted(registry.versions)
    for number, record in registry.versions.items():
        tags = versions[number].tags
        assert tags["steward.kind"] == record.kind
        assert tags["steward.data_fingerprint"] == record.data_fingerprint
        assert float(tags["steward.window_end_day"]) == pytest.approx(
            record.window_end_day, nan_ok=True
        )
        parent = "" if record.parent_id is None else str(record.parent_id)
        assert tags["steward.parent_version"] == parent
        if record.promoted_day is not None:
            assert tags["steward.outcome"] == "promoted"
            assert (
                float(tags["steward.holdout_accuracy"])
                == record.metrics_at_promotion["holdout_accuracy"]
            )
        else:
            assert tags["steward.outcome"].startswith("rejected")
    assert any(v.promoted_day is None for v in registry.versions.values()), "a gate must reject"


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver on 127.0.0.1 answering with the server's ``status``."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def webhook() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies = []  # type: ignore[attr-defined]
    server.status = 204  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def hold_in_mlflow(operated: OperatedWorld) -> tuple[bool, int]:
    """The hold and the answered pages, read from the registry alone."""
    assert operated.settings is not None
    state = read_registry_state(operated.settings.tracking_uri, operated.settings.model_name)
    return state.human_hold, state.acknowledgements


def last_page_in_mlflow(operated: OperatedWorld) -> float:
    """When the last page went out, read from the registry alone (NaN: none)."""
    assert operated.settings is not None
    state = read_registry_state(operated.settings.tracking_uri, operated.settings.model_name)
    return state.last_page_day


def test_escalate_pages_and_holds_until_acknowledged(
    slo: SloConfig,
    families: EstimatorFamilies,
    mlflow_folder: Path,
    tmp_path: Path,
    webhook: HTTPServer,
) -> None:
    received = tmp_path / "page.json"
    script = f"import sys; open({str(received)!r}, 'w').write(sys.stdin.read())"
    command = CommandPager([sys.executable, "-c", script], "paged-by-command")
    operated = elec2_world("mlflow", slo, families, mlflow_folder, "paged-by-command", command, 4)
    operated.world.begin_epoch()
    state = operated.backend.escalate(ActionRequest(Action.RETRAIN, "label health: test"))
    page = json.loads(received.read_text())
    assert page["service"] == "paged-by-command" and page["reason"] == "label health: test"
    assert state.registry.human_hold and hold_in_mlflow(operated) == (True, 0)
    assert last_page_in_mlflow(operated) == operated.world.now == state.registry.last_page_day
    assert operated.backend.acknowledge().registry.human_hold is False
    assert hold_in_mlflow(operated) == (False, 1)

    url = f"http://127.0.0.1:{webhook.server_port}/page"
    hook = WebhookPager(url, "paged-by-webhook")
    operated = elec2_world("mlflow", slo, families, mlflow_folder, "paged-by-webhook", hook, 4)
    operated.world.begin_epoch()
    operated.backend.escalate(ActionRequest(Action.ESCALATE))
    assert webhook.bodies[-1]["service"] == "paged-by-webhook"  # type: ignore[attr-defined]
    assert hold_in_mlflow(operated) == (True, 0)


def test_a_failed_page_raises_and_the_hold_stays_on(
    slo: SloConfig, families: EstimatorFamilies, mlflow_folder: Path, webhook: HTTPServer
) -> None:
    failing = CommandPager([sys.executable, "-c", "import sys; sys.exit('pager down')"], "s")
    operated = elec2_world("mlflow", slo, families, mlflow_folder, "page-fails", failing, 4)
    operated.world.begin_epoch()
    with pytest.raises(PageError, match=r"backend.escalation.command: exited 1 \(pager down\)"):
        operated.backend.escalate(ActionRequest(Action.ESCALATE))
    assert hold_in_mlflow(operated) == (True, 0)  # fail closed: model changes stay frozen
    assert np.isnan(last_page_in_mlflow(operated)), "a page that did not go out is no page"
    assert np.isnan(operated.backend.state().registry.last_page_day)

    webhook.status = 500  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{webhook.server_port}/page"
    operated = elec2_world(
        "mlflow", slo, families, mlflow_folder, "webhook-fails", WebhookPager(url, "s"), 4
    )
    operated.world.begin_epoch()
    with pytest.raises(PageError, match=r"backend.escalation.webhook: answered 500"):
        operated.backend.escalate(ActionRequest(Action.ESCALATE))
    assert hold_in_mlflow(operated) == (True, 0)
    closed = WebhookPager("http://127.0.0.1:9/nobody-listens", "s", timeout_s=2.0)
    with pytest.raises(PageError, match=r"backend.escalation.webhook: unreachable"):
        closed.page(closed_page())


def closed_page() -> Any:
    from steward.simulators.operations import Page

    return Page(1.0, "test", 0)


def test_bad_backend_configs_name_the_field() -> None:
    default = yaml.safe_load(FAMILIES.read_text())
    families = EstimatorFamilies(default)
    with pytest.raises(ConfigError, match=r"backend.families.forest: unknown model family"):
        families.build("forest", 0)
    bad_targets = {
        "collections.OrderedDict": r"builds a OrderedDict, not a scikit-learn classifier",
        "sklearn.linear_model.NoSuchModel": r"cannot be built \(Error locating target",
        "sklearn.linear_model.LinearRegression": r"not a scikit-learn classifier",
    }
    for target, problem in bad_targets.items():
        with pytest.raises(ConfigError, match=rf"backend.families.linear._target_: .*{problem}"):
            EstimatorFamilies({**default, "linear": {"_target_": target}})
    with pytest.raises(ConfigError, match=r"backend.families.linear._target_: missing"):
        EstimatorFamilies({**default, "linear": {"C": 1.0}})
    with pytest.raises(ConfigError, match=r"linear._target_: cannot be built"):
        EstimatorFamilies({**default, "linear": {**default["linear"], "no_such_argument": 1}})
    with pytest.raises(ConfigError, match=r"backend.families: needs at least one family"):
        EstimatorFamilies({})
    with pytest.raises(ConfigError, match=r"backend.escalation: names both"):
        make_pager("s", ["true"], "http://127.0.0.1:1/")
    with pytest.raises(ConfigError, match=r"backend.escalation.webhook: must be an http"):
        make_pager("s", webhook="ftp://host/hook")
    with pytest.raises(PageError, match=r"backend.escalation.command: not found"):
        CommandPager(["no-such-pager-command"], "s").page(closed_page())
    assert make_pager("s") is None


def test_the_state_reader_fails_closed(mlflow_folder: Path) -> None:
    settings = local_settings(mlflow_folder, "unmanaged")
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    with pytest.raises(ConfigError, match=r"backend.model_name: no registered model"):
        MlflowStateReader(client, "never-registered").state()
    client.create_registered_model("unmanaged")
    with pytest.raises(ConfigError, match=r"unmanaged@champion: no such alias"):
        MlflowStateReader(client, "unmanaged").state()
