"""Offline policy evaluation: estimate a new policy's value from decisions logged under another.

Modules, each owning one idea:

* :mod:`agent.ope.logs` — write and read decision logs (Parquet, CSV, SQL audit stores).
* :mod:`agent.ope.checks` — validate logs; reject bad rows by name, count exclusions.
* :mod:`agent.ope.episodes` — logged decisions as padded per-episode arrays.
* :mod:`agent.ope.targets` — a target policy's post-shield probabilities on logged states.
* :mod:`agent.ope.estimators` — IS, PDIS, weighted variants, doubly robust.
* :mod:`agent.ope.fqe` — fitted Q evaluation (also the DR control variate).
* :mod:`agent.ope.bootstrap` — percentile intervals over episodes.
* :mod:`agent.ope.diagnostics` — effective sample size, support, weight quantiles.
* :mod:`agent.ope.verdict` — the explicit rule that says "better" or "not enough evidence".
* :mod:`agent.ope.evaluation` — every estimator for one target, with intervals.
* :mod:`agent.ope.validation` — true values from on-policy rollouts; estimator scores.
* :mod:`agent.ope.report` — ``ope.json`` and the self-contained ``report.html``.
* :mod:`agent.ope.synthetic` — a tiny MDP with known values (tests, sanity checks).
"""
