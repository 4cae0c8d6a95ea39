"""What each action really does to the model registry (``docs/DESIGN.md``, "The actions").

:class:`Operations` runs on an episode's clock and writes to its registry store: the
simulator's in-memory :class:`~steward.simulators.models.registry.Registry`, or a real one
(:mod:`steward.backends`). Either way the same code chooses the window, fits, gates,
calibrates, ensembles, rolls back and pages; the store records the outcome.
"""

from collections.abc import Generator
from typing import Any, NamedTuple, Protocol

import numpy as np
import simpy

from steward.monitoring.drift import DriftReference
from steward.monitoring.metrics import accuracy, roc_auc
from steward.simulators.actions import Action
from steward.simulators.episode import EpisodeState
from steward.simulators.models import ModelBackend, ModelVersion
from steward.simulators.models.backend import calibrated_scores
from steward.simulators.models.registry import RegistryFlags
from steward.simulators.models.version import fingerprint
from steward.simulators.streams import TrainingSet
from steward.simulators.windows import TrainingWindow, choose_window

INITIAL_HOLDOUT_SHARE = 0.2


def log_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy (NaN without rows)."""
    if labels.shape[0] == 0:
        return float("nan")
    p = np.clip(scores, 1e-6, 1 - 1e-6)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


class Page(NamedTuple):
    """A page to a human: when, why, and which version serves."""

    time_days: float
    reason: str
    live_version: int


class Pager(Protocol):
    """Reaches a human (a command, a webhook); raises when the page did not go out."""

    def page(self, page: Page) -> None:
        """Send ``page``."""


class Operations:
    """Runs actions on the model backend and registry, on the episode's clock.

    Args:
        state: the episode's clock, log, registry store, hold and budget.
        backend: fits and scores models.
        pager: reaches a human on escalate (``None``: the simulated human only). A page
            that fails raises after the hold is set: model changes stay frozen, and the
            day of the last page that went out stays as it was.
    """

    def __init__(
        self, state: EpisodeState, backend: ModelBackend, pager: Pager | None = None
    ) -> None:
        self.state = state
        self.backend = backend
        self.pager = pager

    # -- helpers ----------------------------------------------------------------------
    @property
    def env(self) -> simpy.Environment:
        """The episode's SimPy clock."""
        return self.state.env

    def _new_version(self, kind: str, family: str, created_by: str, **kw: Any) -> ModelVersion:
        registry = self.state.registry
        version = ModelVersion(
            version_id=registry.next_id(),
            kind=kind,
            primary_family=family,
            created_day=self.state.now,
            created_by=created_by,
            parent_id=registry.live.version_id if registry.has_live else None,
            **kw,
        )
        return registry.register(version)

    def publish(self) -> None:
        """Tell the registry store the change and page state."""
        w = self.state
        w.registry.publish(
            RegistryFlags(
                w.change_in_flight, w.hold, w.pages_answered, w.last_change_day, w.last_page_day
            )
        )

    def _promote(self, version: ModelVersion, metrics: dict[str, float], action: str) -> None:
        w = self.state
        w.registry.promote(version, w.now, metrics)
        w.last_change_day = w.now
        self.publish()
        w.note(f"{action}: promoted v{version.version_id}")
        w.audit.add(w.now, "outcome", action, detail="promoted", version_id=version.version_id)

    def _reject(self, action: str, why: str, version: ModelVersion | None = None) -> None:
        w = self.state
        version_id = -1
        if version is not None:
            w.registry.reject(version, w.now, why)
            version_id = version.version_id
        self.publish()
        w.note(f"{action}: rejected ({why})")
        w.audit.add(w.now, "outcome", action, detail=f"rejected: {why}", version_id=version_id)

    def _derived_reference(self, version: ModelVersion) -> DriftReference:
        """Drift reference of a calibrated or ensembled version: recent traffic at promotion."""
        log = self.state.log
        first = log.first_row_served_at(self.state.now - 2.0)
        rows = np.arange(first, log.n)
        features = log.features[rows]
        scores = self.backend.predict_proba(version, features)
        labels = log.y_label[log.usable_labels(first, log.n)]
        return DriftReference.from_training(features, scores, labels)

    # -- the first model --------------------------------------------------------------
    def fit_initial(self, data: TrainingSet) -> None:
        """Fit and promote the version that is live when the episode starts."""
        w = self.state
        family = w.scenario.initial_family
        cut = int(data.label.shape[0] * (1 - INITIAL_HOLDOUT_SHARE))
        estimator = self.backend.fit(family, data.features[:cut], data.label[:cut], seed=0)
        version = self._new_version(
            "fit",
            family,
            "initial",
            window_start_day=w.now - 7.0,
            window_end_day=w.now,
            n_train_rows=cut,
            data_fingerprint=fingerprint(data.features[:cut], data.label[:cut]),
            estimator_=estimator,
        )
        train_scores = self.backend.predict_proba(version, data.features[:cut])
        version.reference_ = DriftReference.from_training(
            data.features[:cut], train_scores, data.label[:cut]
        )
        holdout = self.backend.predict_proba(version, data.features[cut:])
        metrics = {
            "holdout_accuracy": accuracy(holdout, data.label[cut:]),
            "holdout_auc": roc_auc(holdout, data.label[cut:]),
        }
        w.registry.promote(version, w.now, metrics)
        w.last_change_day = w.now
        self.publish()

    # -- dispatch ---------------------------------------------------------------------
    def execute(
        self, action: Action, proposed: Action, reason: str, ensemble_accuracy: float
    ) -> None:
        """Run ``action`` (the shield's verdict on ``proposed``) at the current time.

        Args:
            action: what executes.
            proposed: what the policy proposed.
            reason: the shield's reasons for a veto ('' if none).
            ensemble_accuracy: monitoring's last shadow accuracy of the ensemble (an
                ensemble's promotion metric: it has no holdout of its own).
        """
        w = self.state
        cost_before = sum(w.spend.epoch.values())
        failure = self._refusal(action)
        if failure:
            self._reject(action.name.lower(), failure)
        elif action == Action.RETRAIN:
            self._start_fit(action, w.registry.live.primary_family)
        elif action == Action.SIMPLIFY:
            simpler = w.slo.simpler_family(self._simplify_from())
            if simpler is None:
                self._reject("simplify", "no simpler family")
            else:
                self._start_fit(action, simpler)
        elif action == Action.RECALIBRATE:
            w.env.process(self._recalibrate())
        elif action == Action.ENSEMBLE:
            self._ensemble(ensemble_accuracy)
        elif action == Action.ROLLBACK:
            self._rollback()
        elif action == Action.ESCALATE:
            self._page(reason)
        w.audit.add(
            w.now,
            "action",
            action.name.lower(),
            proposed=proposed.name.lower(),
            reason=reason or (failure or ""),
            cost=sum(w.spend.epoch.values()) - cost_before,
            version_id=w.registry.live.version_id,
        )

    def _refusal(self, action: Action) -> str:
        """Why ``action`` cannot run now ('' if it can)."""
        w = self.state
        if action.changes_model and (w.change_in_flight or w.hold):
            return "a change is in flight" if w.change_in_flight else "a human hold is on"
        if action in (Action.ROLLBACK, Action.ENSEMBLE) and w.registry.previous is None:
            return "no previous version"
        return ""

    def _simplify_from(self) -> str:
        w = self.state
        return max(w.registry.live.families, key=lambda f: w.slo.family(f).complexity)

    # -- retrain and simplify: fit, wait, canary, gate ---------------------------------
    def _start_fit(self, action: Action, family: str) -> None:
        w = self.state
        window = choose_window(w.log, w.now, w.scenario.window)
        if window.train_rows.shape[0] < 2 or window.holdout_rows.shape[0] < 1:
            self._reject(action.name.lower(), "no labelled rows in the window")
            return
        w.change_in_flight = True
        self.publish()
        w.charge("training", w.slo.training_cost(family, window.train_rows.shape[0]))
        w.env.process(self._fit_job(action, family, window))

    def _fit_job(
        self, action: Action, family: str, window: TrainingWindow
    ) -> Generator[simpy.Event, Any, None]:
        w = self.state
        name = action.name.lower()
        log = w.log
        # indexing by row arrays copies: the job keeps its own rows
        features = log.features[window.train_rows]
        labels = log.y_label[window.train_rows]
        holdout_features = log.features[window.holdout_rows]
        holdout_labels = log.y_label[window.holdout_rows]
        incident_labels = int(log.corrupted[window.train_rows].sum())
        try:
            estimator = self.backend.fit(family, features, labels, seed=int(w.rng.integers(2**31)))
        except ValueError as err:
            w.change_in_flight = False
            self._reject(name, str(err))
            return
        version = self._new_version(
            "fit",
            family,
            name,
            window_start_day=window.start_day,
            window_end_day=window.end_day,
            n_train_rows=int(labels.shape[0]),
            data_fingerprint=fingerprint(features, labels),
            incident_labels_in_training=incident_labels,
            estimator_=estimator,
        )
        version.reference_ = DriftReference.from_training(
            features, self.backend.predict_proba(version, features), labels
        )
        train_days = w.slo.training_days(family, labels.shape[0])
        yield w.env.timeout(train_days + w.slo.canary_days)
        # shadow traffic for the canary
        w.charge(
            "training",
            w.slo.inference_cost(version.families, w.requests_per_day * w.slo.canary_days),
        )
        while w.hold:  # a human hold freezes promotions
            yield w.hold_released
        if self._retracted_since_fit(action, window.train_rows, version):
            return
        candidate_scores = self.backend.predict_proba(version, holdout_features)
        candidate = accuracy(candidate_scores, holdout_labels)
        incumbent = accuracy(
            self.backend.predict_proba(w.registry.live, holdout_features), holdout_labels
        )
        metrics = {
            "holdout_accuracy": candidate,
            "holdout_auc": roc_auc(candidate_scores, holdout_labels),
            "incumbent_holdout_accuracy": incumbent,
            "holdout_rows": float(holdout_labels.shape[0]),
        }
        if action == Action.SIMPLIFY:
            wins = candidate >= incumbent - w.scenario.simplify_tolerance
        else:
            wins = candidate > incumbent + w.scenario.promotion_margin
        w.change_in_flight = False
        if wins:
            self._promote(version, metrics, name)
        else:
            self._reject(name, f"canary lost {candidate:.3f} vs {incumbent:.3f}", version)

    def _retracted_since_fit(
        self, action: Action, train_rows: np.ndarray, version: ModelVersion
    ) -> bool:
        """Reject a candidate some of whose training labels were retracted since its fit.

        A human who ends a label corruption purges the labels it touched; a candidate fitted
        on any of them learnt the broken join, whatever its canary says (production does
        the same when a retraction hits a candidate's training window).
        """
        w = self.state
        retracted = int(np.count_nonzero(w.log.purged[train_rows]))
        if not retracted:
            return False
        w.change_in_flight = False
        self._reject(
            action.name.lower(), f"{retracted} training labels retracted since the fit", version
        )
        return True

    # -- recalibrate ------------------------------------------------------------------
    def _recalibrate(self) -> Generator[simpy.Event, Any, None]:
        w = self.state
        live = w.registry.live
        base = live.members[0] if live.is_calibrated else live
        rows = w.log.arrived_since(w.now - w.scenario.calibration_days)
        rows = rows[w.log.t_arrive[rows] <= w.now - w.scenario.window.label_maturity_days]
        if rows.shape[0] < 50:
            self._reject("recalibrate", "too few recent labels")
            return
        w.change_in_flight = True
        self.publish()
        w.charge("training", w.slo.calibration_cost)
        features = w.log.features[rows]
        base_scores = self.backend.predict_proba(base, features)
        labels = w.log.y_label[rows]
        cut = int(rows.shape[0] * 0.7)
        try:
            calibrator = self.backend.fit_calibrator(
                base_scores[:cut], labels[:cut], w.scenario.calibration_method
            )
        except ValueError as err:
            w.change_in_flight = False
            self._reject("recalibrate", str(err))
            return
        version = self._new_version(
            "calibrated",
            base.primary_family,
            "recalibrate",
            members=(base,),
            window_start_day=float(w.log.t_serve[rows].min()),
            window_end_day=float(w.log.t_serve[rows].max()),
            n_train_rows=cut,
            data_fingerprint=fingerprint(base_scores[:cut], labels[:cut]),
            incident_labels_in_training=int(w.log.corrupted[rows[:cut]].sum()),
            calibrator_=calibrator,
        )
        yield w.env.timeout(w.slo.calibration_days)
        while w.hold:
            yield w.hold_released
        if self._retracted_since_fit(Action.RECALIBRATE, rows[:cut], version):
            return
        calibrated = calibrated_scores(calibrator, base_scores)
        incumbent = (
            base_scores
            if w.registry.live is base
            else self.backend.predict_proba(w.registry.live, features)
        )
        before = log_loss(incumbent[cut:], labels[cut:])
        after = log_loss(calibrated[cut:], labels[cut:])
        w.change_in_flight = False
        if after < before:
            version.reference_ = DriftReference.from_training(features, calibrated, labels)
            metrics = {
                "holdout_accuracy": accuracy(calibrated[cut:], labels[cut:]),
                "holdout_auc": roc_auc(calibrated[cut:], labels[cut:]),
                "holdout_log_loss": after,
                "incumbent_log_loss": before,
            }
            self._promote(version, metrics, "recalibrate")
        else:
            self._reject("recalibrate", f"log loss {after:.3f} vs {before:.3f}", version)

    # -- ensemble and rollback: instant ------------------------------------------------
    def _ensemble(self, shadow_accuracy: float) -> None:
        w = self.state
        live, partner = w.registry.live, w.registry.previous
        assert partner is not None
        version = self._new_version(
            "ensemble",
            live.primary_family,
            "ensemble",
            members=(live, partner),
            window_start_day=min(live.window_start_day, partner.window_start_day),
            window_end_day=max(live.window_end_day, partner.window_end_day),
        )
        version.reference_ = self._derived_reference(version)
        metrics = {
            "holdout_accuracy": shadow_accuracy,
            # no holdout of its own: its members' references, averaged
            "holdout_auc": float(
                np.mean(
                    [m.metrics_at_promotion.get("holdout_auc", np.nan) for m in (live, partner)]
                )
            ),
        }
        self._promote(version, metrics, "ensemble")

    def _rollback(self) -> None:
        w = self.state
        target = w.registry.rollback(w.now)
        assert target is not None
        w.last_change_day = w.now
        self.publish()
        w.note(f"rollback: v{target.version_id} live again")
        w.audit.add(w.now, "outcome", "rollback", detail="restored", version_id=target.version_id)

    # -- escalate ---------------------------------------------------------------------
    def _page(self, reason: str) -> None:
        w = self.state
        w.charge("pages", w.slo.page_cost)
        w.hold = True
        w.pages_pending += 1
        self.publish()  # the hold is on before the page goes out: a failed page keeps it
        if self.pager is not None:
            self.pager.page(Page(w.now, reason, w.registry.live.version_id))
        w.last_page_day = w.now  # it went out (a pager that raised leaves the last one)
        self.publish()
        delay = w.rng.uniform(
            w.scenario.human.response_days_min, w.scenario.human.response_days_max
        )
        w.env.process(self._human_answers(delay))

    def _human_answers(self, delay: float) -> Generator[simpy.Event, Any, None]:
        yield self.state.env.timeout(delay)
        self.answer_page()

    def answer_page(self) -> bool:
        """A paged human answers now: running label incidents end, and once every page is
        answered the hold lifts. Returns ``False`` when no page was waiting."""
        w = self.state
        if w.pages_pending == 0:
            return False
        ended = w.resolve_incidents()
        detail = f"ended {ended} label incident(s)" if ended else "wasted page: no incident"
        w.note(f"human answered: {detail}")
        w.audit.add(w.now, "outcome", "escalate", detail=detail)
        w.pages_pending -= 1
        w.pages_answered += 1
        if w.pages_pending == 0:
            w.release_hold()
        self.publish()
        return True
