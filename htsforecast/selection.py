"""Choose the best ``(model, method)`` from a cross-validation table, and forecast with it.

:func:`select_best` reads the table of :func:`htsforecast.cross_validate` (globally or per level),
:func:`choose_pipeline` is the job's robust global choice over several windows (eligibility
rules, a one-standard-error rule), :func:`forecast_best` fits only the chosen pipeline(s) on the
full history, and :func:`skill_table` gives skill scores against a reference pipeline (fpp3
Table 11.3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from htsforecast import metrics as _metrics
from htsforecast._cv import ALL, CVResult
from htsforecast.errors import DataError

__all__ = [
    "Selection",
    "select_best",
    "choose_pipeline",
    "default_cv_plan",
    "erm_eligible",
    "METHOD_PREFERENCE",
    "forecast_best",
    "skill_table",
]

#: Reconciliation methods in the order :func:`choose_pipeline` prefers them among pipelines
#: whose cross-validated scores are statistically indistinguishable from the best: the
#: estimators that did best on average in the large comparisons (Wickramasuriya, Athanasopoulos
#: & Hyndman 2019; Panagiotelis et al. 2021; fpp3 Ch. 11) first, fixed-weight ones next,
#: bottom-up last among the linear projections. Methods not listed are never preferred.
METHOD_PREFERENCE = ("mint_shrink", "wls_var", "wls_struct", "ols", "bu")

#: Scores closer than this are reported as a tie.
TIE = 5e-4

#: Data up to this many observations (nodes x periods) get several CV windows by default.
SMALL_OBS = 100_000
#: At most this many windows by default.
DEFAULT_WINDOWS = 3


@dataclass(frozen=True)
class Selection:
    """The chosen pipeline: ``(model, method)`` globally, or one per level.

    ``choices`` maps a level name (or ``"all"`` for a global choice) to ``(model, method)``;
    ``scores`` holds the winning metric value for each.
    """

    metric: str
    by: str
    choices: dict[str, tuple[str, str]]
    scores: dict[str, float]

    @property
    def model(self) -> str:
        """The globally chosen model (the ``"all"`` choice)."""
        return self.choices[ALL][0]

    @property
    def method(self) -> str:
        """The globally chosen reconciliation method (the ``"all"`` choice)."""
        return self.choices[ALL][1]


def _objective(metric: str, values: pd.Series) -> pd.Series:
    """Lower is better, by the metric's declared direction (|bias|, |coverage - nominal| ...)."""
    spec, level = _metrics.resolve(metric)
    return spec.objective(values, level)


def select_best(
    cv_table: pd.DataFrame | CVResult,
    metric: str = "mase",
    by: Literal["global", "level"] = "global",
) -> Selection:
    """Choose the best ``(model, method)`` from a cross-validation table.

    Parameters
    ----------
    cv_table : DataFrame or CVResult
        Output of :func:`cross_validate`.
    metric : str
        The metric to minimise (``bias`` by absolute value, ``coverage_L`` by distance to the
        nominal ``L`` %).
    by : {"global", "level"}
        ``"global"``: one pipeline, best on the ``"all"`` row (mean over every node). ``"level"``:
        one pipeline per level (plus ``"all"``). Note that forecasts stitched from different
        methods per level are in general *not coherent*; use per-level choices to learn which
        method to trust where, and the global choice to forecast.

    Returns
    -------
    Selection
    """
    table = cv_table.table if isinstance(cv_table, CVResult) else cv_table
    sub = table[table["metric"] == metric]
    if sub.empty:
        raise DataError(
            f"select_best: metric {metric!r} is not in the table; it has "
            f"{sorted(table['metric'].unique())}. Add it to cross_validate(metrics=...)."
        )
    if by not in ("global", "level"):
        raise DataError(f"select_best: by must be 'global' or 'level', got {by!r}.")
    sub = sub.assign(_obj=_objective(metric, sub["value"])).dropna(subset=["_obj"])
    levels = [ALL] if by == "global" else list(dict.fromkeys(sub["level"]))
    choices, scores = {}, {}
    for lv in levels:
        part = sub[sub["level"] == lv]
        if part.empty:
            raise DataError(f"select_best: no finite {metric!r} scores for level {lv!r}.")
        best = part.loc[part["_obj"].idxmin()]
        choices[lv] = (str(best["model"]), str(best["method"]))
        scores[lv] = float(best["value"])
    return Selection(metric=metric, by=by, choices=choices, scores=scores)


def default_cv_plan(n_dates: int, h: int, m: int, n_obs: int) -> tuple[int, int]:
    """``(n_windows, step)`` of the job's cross-validation when the user names none.

    One window on large data (more than :data:`SMALL_OBS` observations: the radon panel, M5-size
    jobs), so a default run stays affordable. Otherwise up to :data:`DEFAULT_WINDOWS` rolling
    origins, the most recent ones, one season apart when the season is shorter than ``h``
    (``step = m``, e.g. yearly origins for quarterly data with h = 8; else ``step = h``), each
    training on at least half of the history and on more than one season. One window is a
    single draw of h periods: a pipeline that wins there by luck (prison: closed-form ERM chosen
    from one window scored 2x worse on the test years) is caught only by several.
    """
    step = m if 1 < m < h else h
    min_train = max(m + 1, (n_dates + 1) // 2)
    fit = max(0, (n_dates - h - min_train) // step + 1)
    if fit == 0:  # fall back to the loosest rule (the job's notice when even that fails)
        return (1 if n_dates - h >= m + 1 else 0), h
    return min(fit, 1 if n_obs > SMALL_OBS else DEFAULT_WINDOWS), step


def erm_eligible(h: int, n_nodes: int) -> bool:
    """Whether closed-form ERM is a well-posed estimator here.

    ERM (as hierarchicalforecast's ``method="closed"``) fits the dense ``n_bottom x n_nodes``
    matrix ``P`` by least squares on the last ``h`` in-sample periods. Ben Taieb & Koo (2019)
    estimate ``P`` on a validation set and need ``Ŷ'Ŷ`` (``n_nodes x n_nodes``) invertible,
    i.e. at least as many periods as nodes. With fewer periods the problem is underdetermined:
    the pseudo-inverse interpolates those few periods exactly and ``P`` is noise.
    hierarchicalforecast's ``ERM`` documentation gives the closed form with ``(Ŷ Ŷ')⁻¹`` and
    points to its lasso variant ``"reg_bu"`` "when the observations of validation data is
    limited". So ERM is eligible for automatic selection only when ``h >= n_nodes``; it is still
    scored and can be chosen by hand.
    """
    return int(h) >= int(n_nodes)


def choose_pipeline(
    by_window: pd.DataFrame,
    metric: str = "mase",
    *,
    allow_incoherent: bool = False,
    eligible: Callable[[str, str], bool] | None = None,
) -> dict[str, Any]:
    """The job's global choice of ``(model, method)`` from per-window cross-validation scores.

    Parameters
    ----------
    by_window : DataFrame
        ``CVResult.by_window`` (``level, cutoff, model, method, metric, value``); only the
        ``"all"`` rows of ``metric`` are used.
    metric : str
        Lower is better after the metric's objective (``coverage_L``: distance to ``L`` %).
    allow_incoherent : bool
        Let the unreconciled ``"base"`` forecasts compete.
    eligible : callable ``(model, method) -> bool``, optional
        Pipelines for which it returns False are left out (e.g. ERM where it is ill-posed,
        :func:`erm_eligible`); their scores stay in the accuracy table.

    Returns
    -------
    dict
        ``model, method, metric, score`` (mean over windows), ``evaluated``, ``windows``,
        ``rule`` (how the choice was made), ``runner_up`` and ``tied_with`` where they apply,
        ``excluded`` (pipelines left out and why).

    Notes
    -----
    A pipeline is scored by its mean over windows. Only pipelines with a finite score in *every*
    window compete. With one window the lowest score wins. With two or more, a one-standard-error
    rule (Breiman et al. 1984; Hastie, Tibshirani & Friedman 2009, §7.10) guards against crowning
    a pipeline that won by luck: the candidates are the pipelines whose mean excess over the best
    is within one standard error of that excess across windows (not significantly worse,
    window by window) *and* within one standard error of the best pipeline's own mean (Breiman's
    rule: within the noise of the best estimate; without it a pipeline whose scores swing from
    window to window would pass however much worse its mean), and among them the reconciliation
    method earliest in :data:`METHOD_PREFERENCE` is taken (then the lowest mean); when none of the
    candidates is in that list, the best mean wins.
    """
    rows = by_window[(by_window["level"] == ALL) & (by_window["metric"] == metric)]
    excluded: dict[str, str] = {}
    if not allow_incoherent:
        rows = rows[rows["method"] != "base"]
    if eligible is not None:
        keep = np.array([eligible(m, k) for m, k in zip(rows["model"], rows["method"])], bool)
        for m, k in set(zip(rows["model"][~keep], rows["method"][~keep])):
            excluded[f"{m}/{k}"] = "not eligible (an ill-posed estimator for this data)"
        rows = rows[keep]
    rows = rows.assign(_obj=_objective(metric, rows["value"]).to_numpy())
    wide, raw = (
        rows.pivot_table(index=["model", "method"], columns="cutoff", values=col,
                         aggfunc="first", sort=False, dropna=False)
        for col in ("_obj", "value")
    )  # fmt: skip
    finite = np.isfinite(wide.to_numpy(dtype=float)).all(axis=1)
    for m, k in wide.index[~finite]:
        excluded[f"{m}/{k}"] = "no finite score in every window"
    wide = wide[finite]
    if wide.empty:
        raise DataError(
            f"no pipeline has a finite {metric!r} score in every window: "
            + (
                "the in-sample seasonal-naive error is zero for every node (constant or exactly "
                "periodic data), so scaled errors are undefined. Use --metric rmse or mae."
                if metric == "mase"
                else "the evaluation produced no finite values."
            )
        )
    mean = wide.mean(axis=1).sort_values(kind="stable")
    best = mean.index[0]
    rule = "lowest mean score" if wide.shape[1] == 1 else "lowest mean score (no close rival)"
    chosen = best
    if wide.shape[1] > 1:
        from htsforecast.models._backtest import within_one_se

        excess = wide.sub(wide.loc[best], axis=1).loc[mean.index]
        k = wide.shape[1]
        se_best = float(np.std(wide.loc[best].to_numpy(dtype=float), ddof=1)) / np.sqrt(k)
        paired = within_one_se(excess.to_numpy(dtype=float))
        close = list(mean.index[paired & (mean - mean[best] <= se_best).to_numpy()])
        preferred = [p for p in close if p[1] in METHOD_PREFERENCE]
        if preferred:
            chosen = min(preferred, key=lambda p: (METHOD_PREFERENCE.index(p[1]), mean[p]))
            if chosen != best:
                rule = (
                    f"one-standard-error rule: {chosen[0]}/{chosen[1]} is within one standard "
                    f"error of the best mean ({best[0]}/{best[1]}) and its method is preferred"
                )
    record = {"windows": int(wide.shape[1]), "rule": rule}
    return _describe(chosen, mean, raw.loc[mean.index].mean(axis=1), metric, record, excluded)


def _describe(
    chosen: tuple,
    objective: pd.Series,
    raw: pd.Series,
    metric: str,
    record: dict[str, Any],
    excluded: dict[str, str],
) -> dict[str, Any]:
    """The selection record: chosen pipeline, runner-up, ties, windows and exclusions.

    ``objective`` (sorted, best first) and ``raw`` are the mean objective and the mean metric
    value per pipeline; margins are in the objective, scores are metric values."""
    obj = {p: float(v) for p, v in objective.items()}
    out: dict[str, Any] = {"model": str(chosen[0]), "method": str(chosen[1]), "metric": metric,
                           "score": float(raw[chosen]), "evaluated": True, **record}  # fmt: skip
    others = [p for p in objective.index if p != chosen]
    if others:
        second = others[0]
        out["runner_up"] = {"model": str(second[0]), "method": str(second[1]),
                            "score": float(raw[second]),
                            "margin": obj[second] - obj[chosen]}  # fmt: skip
        ties = [p for p in others if abs(obj[p] - obj[chosen]) < TIE]
        if ties:
            out["tied_with"] = [f"{m}/{k}" for m, k in ties]
    if excluded:
        out["excluded"] = excluded
    return out


def forecast_best(
    Y: pd.DataFrame,
    hier: Any,
    selection: Selection,
    models: Mapping[str, Any],
    methods: Mapping[str, Any] | None,
    h: int,
    *,
    freq: str,
    level: Sequence[int] | None = None,
    n_jobs: int = 1,
    **forecast_kwargs: Any,
) -> pd.DataFrame:
    """Forecast the full data with the selected pipeline.

    For a global selection, returns the tidy reconciled forecasts of the chosen model and
    method (coherent for any reconciled method). For a per-level selection, each node takes
    the forecasts of its level's choice (generally not coherent, see :func:`select_best`).
    Only the models and methods that were chosen are fitted.
    """
    chosen = selection.choices if selection.by == "level" else {ALL: selection.choices[ALL]}
    need_models = {m for m, _ in chosen.values()}
    need_methods = {k for _, k in chosen.values() if k != "base"}
    unknown = sorted(need_models - set(models)) + sorted(need_methods - set(methods or {}))
    if unknown:
        raise DataError(
            f"forecast_best: selection uses {unknown}, not in the given models/methods."
        )
    sub_models = {k: v for k, v in models.items() if k in need_models}
    sub_methods = {k: v for k, v in (methods or {}).items() if k in need_methods}
    from htsforecast._forecast import forecast
    from htsforecast.reconciliation import reconcile

    lv = sorted(level or []) or None
    base = forecast(Y, sub_models, h=h, freq=freq, level=lv, n_jobs=n_jobs, **forecast_kwargs)
    if sub_methods:
        fc = reconcile(base, hier, methods=sub_methods, level=lv).forecasts
    else:
        fc = base.forecasts.assign(method="base")
    if selection.by != "level":
        model, method = selection.choices[ALL]
        return fc[(fc["model"] == model) & (fc["method"] == method)].reset_index(drop=True)
    pick = pd.DataFrame(
        [
            (node, *selection.choices.get(lv, selection.choices[ALL]))
            for lv, nodes in hier.levels.items()
            for node in nodes
        ],
        columns=["unique_id", "model", "method"],
    )
    return fc.merge(pick, on=["unique_id", "model", "method"]).reset_index(drop=True)


def skill_table(
    cv_table: pd.DataFrame | CVResult,
    metric: str = "crps",
    reference: tuple[str, str] = ("snaive", "base"),
) -> pd.DataFrame:
    """Skill scores ``1 - score / score_ref`` per level against a reference pipeline.

    fpp3 Table 11.3 reports the CRPS skill of each reconciliation method against seasonal-naive
    base forecasts; ``skill_table(cv, "crps", ("snaive", "base"))`` gives that table for a
    cross-validation run that included a ``"snaive"`` model. Returns ``level, model, method,
    metric, value`` with ``metric = "<metric>_skill"``; the reference row itself scores 0.
    """
    table = cv_table.table if isinstance(cv_table, CVResult) else cv_table
    sub = table[table["metric"] == metric]
    ref = sub[(sub["model"] == reference[0]) & (sub["method"] == reference[1])]
    if ref.empty:
        raise DataError(
            f"skill_table: no {metric!r} rows for the reference model={reference[0]!r}, "
            f"method={reference[1]!r}; include it in cross_validate (e.g. SeasonalNaive)."
        )
    ref_by_level = ref.set_index("level")["value"]
    out = sub.assign(
        value=_metrics.skill_score(
            sub["value"].to_numpy(), sub["level"].map(ref_by_level).to_numpy()
        ),
        metric=f"{metric}_skill",
    )
    return out.reset_index(drop=True)
