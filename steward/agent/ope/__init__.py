"""Offline policy evaluation: estimate a new policy's value from decisions logged under another.

Modules, each owning one idea:

* :mod:`steward.agent.ope.logs` — write and read decision logs (Parquet, CSV, SQL audit stores).
* :mod:`steward.agent.ope.checks` — validate logs; reject bad rows by name, count exclusions.
* :mod:`steward.agent.ope.episodes` — logged decisions as padded per-episode arrays.
* :mod:`steward.agent.ope.targets` — a target policy's post-shield probabilities on logged states.
* :mod:`steward.agent.ope.estimators` — IS, PDIS, weighted variants, doubly robust.
* :mod:`steward.agent.ope.fqe` — fitted Q evaluation (also the DR control variate).
* :mod:`steward.agent.ope.bootstrap` — percentile intervals over episodes.
* :mod:`steward.agent.ope.diagnostics` — effective sample size, support, weight quantiles.
* :mod:`steward.agent.ope.verdict` — the explicit rule that says "better" or "not enough evidence".
* :mod:`steward.agent.ope.evaluation` — every estimator for one target, with intervals.
* :mod:`steward.agent.ope.validation` — true values from on-policy rollouts; estimator scores.
* :mod:`steward.agent.ope.report` — ``ope.json`` and the self-contained ``report.html``.
* :mod:`steward.agent.ope.synthetic` — a tiny MDP with known values (tests, sanity checks).
"""
