"""Offline policy evaluation: estimate a new policy's value from decisions logged under another.

Modules, each owning one idea:

* :mod:`steward.agent.ope.logs` — write and read decision logs (Parquet, CSV, SQL audit stores).
* :mod:`steward.agent.ope.checks` — validate logs; reject bad rows by name, count exclusions.
* :mod:`steward.agent.ope.episodes` — logged decisions as padded per-episode arrays.
* :mod:`steward.agent.ope.targets` — a target policy's post-shield probabilities on logged states.
* :mod:`steward.agent.ope.estimators` — IS, PDIS, weighted variants, doubly robust.
* :mod:`steward.agent.ope.fqe` — fitted Q evaluation (also the DR control variate).
* :mod:`steward.agent.ope.bootstrap` — percentile intervals over episodes.
* :mod:`steward.agent.ope.paired` — each estimator's paired difference to the behaviour.
* :mod:`steward.agent.ope.bounds` — high-confidence bounds on the difference (no Q model).
* :mod:`steward.agent.ope.diagnostics` — effective sample size, support, weight quantiles.
* :mod:`steward.agent.ope.verdict` — the explicit rule: "better", "worse" or "not enough
  evidence", from the difference's interval.
* :mod:`steward.agent.ope.evaluation` — every estimator for one target, with intervals.
* :mod:`steward.agent.ope.deployed` — the deployed-agent protocol: logs of the agent in
  service behind its exploration floor, candidates judged behind the same floor.
* :mod:`steward.agent.ope.comparison` — from validated logs to every candidate's report.
* :mod:`steward.agent.ope.gate` — the promotion gate's evaluation on the audit trail.
* :mod:`steward.agent.ope.pair_scores` — coverage, verdict error rates and power over
  many (log, candidate) pairs with simulated truth.
* :mod:`steward.agent.ope.validation` — true values from on-policy rollouts; estimator scores.
* :mod:`steward.agent.ope.report` — ``ope.json`` and the self-contained ``report.html``
  (:mod:`~steward.agent.ope.report_html`, :mod:`~steward.agent.ope.report_differences`).
* :mod:`steward.agent.ope.synthetic` — a tiny MDP with known values (tests, sanity checks).
"""
