"""Choose the best ``(model, method)`` from a cross-validation table, and forecast with it.

:func:`select_best` reads the table of :func:`htsforecast.cross_validate` (globally or per level),
:func:`forecast_best` fits only the chosen pipeline(s) on the full history, and
:func:`skill_table` gives skill scores against a reference pipeline (fpp3 Table 11.3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from htsforecast import metrics as _metrics
from htsforecast._cv import ALL, CVResult
from htsforecast.errors import DataError

__all__ = ["Selection", "select_best", "forecast_best", "skill_table"]


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
