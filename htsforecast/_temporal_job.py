"""``htsforecast run --temporal auto|12,4,1``: the job on a temporal (and cross-temporal) hierarchy.

holdout of the last ``h`` periods (rounded up to whole top-level periods) → base forecasts at
every temporal level → temporal (``te_*``) and cross-temporal (``ct_*``) reconciliation →
MAE / RMSE / MASE per cross-sectional and temporal level → refit on all the data → write
``forecasts.csv`` (with ``temporal_level``) and ``accuracy.csv``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd

from htsforecast.errors import DataError
from htsforecast.hierarchy import Hierarchy
from htsforecast.temporal import (
    TemporalHierarchy,
    accuracy_table,
    forecast_temporal,
    reconcile_cross_temporal,
    reconcile_temporal,
    tag_methods,
)

__all__ = ["TEMPORAL_RUN_METHODS", "parse_factors", "run_temporal"]

#: Methods the job runs: temporal (per series) and cross-temporal.
TEMPORAL_RUN_METHODS = {"te": ("struc", "wlsv", "shr"), "ct": ("ols", "wlsv", "bdshr", "tcs")}


def parse_factors(spec: Any) -> list[int] | None:
    """``"auto"`` -> None (every divisor of the season); ``"12,4,1"`` or ``[12, 4, 1]`` -> list."""
    if isinstance(spec, str):
        if spec.strip().lower() == "auto":
            return None
        spec = [s for s in spec.split(",") if s.strip()]
    try:
        return [int(s) for s in spec]
    except (TypeError, ValueError):
        raise DataError(
            f"--temporal must be 'auto' or factors such as 12,4,1, got {spec!r}."
        ) from None


def _reconcile(base, hier: Hierarchy, nonnegative: bool):
    ct_methods = [m for m in TEMPORAL_RUN_METHODS["ct"] if not (nonnegative and m == "tcs")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        te = reconcile_temporal(base, TEMPORAL_RUN_METHODS["te"], nonnegative=nonnegative)
        ct = reconcile_cross_temporal(base, hier, ct_methods, nonnegative=nonnegative)
    return tag_methods(("te_", te), ("ct_", ct))


def run_temporal(
    cfg: Any,
    hier: Hierarchy,
    Y: pd.DataFrame,
    freq: str,
    factory: Callable[[str, int], Any],
    echo: Callable[[str], None] = print,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the temporal job; returns (forecasts of every level, accuracy table).

    ``factory(model name, season length)`` builds each model of ``cfg.models`` per temporal level.
    """
    th = TemporalHierarchy(freq, parse_factors(cfg.temporal))
    h = cfg.h if cfg.h is not None else th.m
    h = -(-int(h) // th.m) * th.m
    n_per = Y.groupby("unique_id").size().min()
    if n_per - h < 2 * th.m:
        raise DataError(
            f"--temporal needs at least two top-level periods ({2 * th.m} x {freq}) of training "
            f"data before the {h}-period holdout; the shortest series has {n_per} periods."
        )
    last = Y.groupby("unique_id")["ds"].rank(ascending=False, method="first") <= h
    train, test = Y[~last], Y[last]
    models = {name: (lambda s, name=name: factory(name, s)) for name in cfg.models}
    echo(
        f"{hier.n_nodes} series x {len(th.factors)} temporal levels {list(th.factors)} "
        f"({freq}); holdout h={h}; models {list(models)}; temporal methods "
        f"{list(TEMPORAL_RUN_METHODS['te'])}, cross-temporal {list(TEMPORAL_RUN_METHODS['ct'])}"
    )
    base = forecast_temporal(train, th, models, h, n_jobs=cfg.n_jobs, progress=False)
    rec = _reconcile(base, hier, cfg.nonnegative)
    accuracy = accuracy_table(rec, th.aggregate(test), base, hier)
    final = forecast_temporal(Y, th, models, h, n_jobs=cfg.n_jobs, progress=False)
    forecasts = _reconcile(final, hier, cfg.nonnegative).forecasts
    metric = cfg.metric if cfg.metric in ("mase", "rmse", "mae") else "mase"
    sub = accuracy[(accuracy.metric == metric) & (accuracy.level == "all")]
    summary = sub.pivot_table(index="temporal_level", columns="method", values="value")
    echo(f"\n{metric} by temporal level on the holdout (mean over all series):")
    echo(summary.sort_index(ascending=False).round(3).to_string())
    return forecasts, accuracy
