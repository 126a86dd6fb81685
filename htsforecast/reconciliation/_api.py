"""``reconcile``: tidy frames in, tidy frames out, around the array kernel.

validate → arrays (node order) → every method's ``S P ŷ`` → tidy frame + diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from htsforecast import validation as v
from htsforecast.errors import DataError, ReconciliationError
from htsforecast.hierarchy import Hierarchy
from htsforecast.reconciliation._methods import Fitted, Problem

__all__ = ["reconcile", "Reconciled", "from_nixtla_frames"]

Intervals = Literal["gaussian", "bootstrap", "samples"]


@dataclass(frozen=True)
class Reconciled:
    """Result of :func:`reconcile`.

    Attributes
    ----------
    forecasts : DataFrame
        ``unique_id, ds, model, method, yhat`` (+ ``yhat_lo_L``, ``yhat_hi_L``); the base
        forecasts are included as method ``"base"``.
    diagnostics : DataFrame
        One row per (model, method): ``max_coherence_violation`` (max |aggregate − sum of its
        bottoms| of the output), ``negatives_before`` / ``negatives_after`` (count of negative
        point forecasts), ``mean_abs_adjustment`` (mean |ỹ − ŷ|) and one
        ``adjustment[<level>]`` column per level.
    info : dict
        Per (model, method) extra information (e.g. the shrinkage intensity λ, fallbacks).
    level : list of int
        The interval levels of ``forecasts`` (``yhat_lo_L`` / ``yhat_hi_L`` columns), sorted, as
        ``BaseForecasts.level``.
    """

    forecasts: pd.DataFrame
    diagnostics: pd.DataFrame
    info: dict
    level: list[int] = field(default_factory=list)

    def wide(self) -> pd.DataFrame:
        """Nixtla-style wide frame: ``unique_id, ds, <model>/<method>`` columns (+ intervals)."""
        fc = self.forecasts
        name = np.where(fc["method"] == "base", fc["model"], fc["model"] + "/" + fc["method"])
        value_cols = [c for c in fc.columns if c.startswith("yhat")]
        wide = fc.assign(_name=name).pivot_table(
            index=["unique_id", "ds"], columns="_name", values=value_cols, sort=False
        )
        wide.columns = [
            n if c == "yhat" else f"{n}-{c.split('_')[1]}-{c.split('_')[2]}"
            for c, n in wide.columns
        ]
        return wide.reset_index()


def reconcile(
    base: Any,
    hier: Hierarchy | None = None,
    methods: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    level: Sequence[int] | None = None,
    intervals: Intervals | None = "gaussian",
    n_samples: int = 1000,
    seed: int = 0,
    Y_df: pd.DataFrame | None = None,
    S_df: pd.DataFrame | None = None,
    tags: Mapping[str, Sequence[str]] | None = None,
) -> Reconciled:
    """Reconcile base forecasts with every method.

    Parameters
    ----------
    base : BaseForecasts or DataFrame
        The result of :func:`htsforecast.forecast`, or a Nixtla-style ``Y_hat_df``
        (``unique_id, ds, <model>, <model>-lo-80, ...``) together with ``Y_df``.
    hier : Hierarchy, optional
        The hierarchy; or give ``S_df`` and ``tags`` (hierarchicalforecast's format).
    methods : dict name -> method, or list of methods
        E.g. ``{"bu": BottomUp(), "mint": MinTrace("mint_shrink")}``.
    level : list of int, optional
        Interval levels (default: the levels of the base forecasts).
    intervals : {"gaussian", "bootstrap", "samples", None}
        ``"gaussian"``: reconciled variances diag(S P W_h P' S') with W_h = D_σ R D_σ (σ from the
        base intervals, R the correlation of the method's W). ``"bootstrap"``: base sample paths
        ŷ + in-sample residuals drawn at the same time indices for every node (keeps the
        cross-series correlation, Panagiotelis et al. 2023), each path reconciled, quantiles
        reported. ``"samples"``: reconcile the model's own predictive samples (Prophet).
    n_samples, seed : int
        Number of bootstrap paths and the seed (reproducible).
    Y_df, S_df, tags : DataFrame, DataFrame, dict
        Nixtla-style inputs: ``Y_df`` has ``unique_id, ds, y`` and one fitted-value column per
        model.

    Returns
    -------
    Reconciled
    """
    if hier is None:
        if S_df is None or tags is None:
            raise ReconciliationError("give a Hierarchy, or S_df and tags.")
        hier = Hierarchy.from_nixtla(S_df, tags)
    # Single-threaded BLAS: multi-threaded BLAS collapses when the cores are busy (parallel model
    # fits): measured 0.95 s vs 0.007 s for a 501 x 501 Cholesky on a loaded 2-core machine, and
    # mint_shrink at 30,000 bottom series took 4.9 s with default threads vs 3.0 s with one.
    with threadpool_limits(limits=1, user_api="blas"):
        return _reconcile(base, hier, methods, level, intervals, n_samples, seed, Y_df)


def _reconcile(base, hier, methods, level, intervals, n_samples, seed, Y_df) -> Reconciled:  # noqa: ANN001
    fc, insample, samples, base_level = _unpack_base(base, Y_df)
    levels = sorted({int(x) for x in (level if level is not None else base_level)})
    methods = _normalize_methods(methods)
    node_ids = hier.node_ids
    problem_base = _problem(hier)
    frames, diags, info = [], [], {}
    for model, fcm in fc.groupby("model", sort=False):
        dates, yhat, sigma = _forecast_arrays(fcm, node_ids, model)
        problem = _with_insample(problem_base, insample, model, node_ids)
        frames.append(_base_frame(fcm, levels))
        for name, method in methods.items():
            fitted = method.fit(problem, yhat)
            ytilde = np.asarray(hier.S @ fitted.bottom(yhat, "point"))
            bounds = _interval_bounds(
                intervals,
                fitted,
                problem,
                hier,
                yhat,
                ytilde,
                sigma,
                levels,
                samples.get(model),
                n_samples,
                seed,
                getattr(method, "nonnegative", False),
                model,
            )
            frames.append(_tidy(node_ids, dates, model, name, ytilde, bounds))
            diags.append(_diagnostics(problem, model, name, yhat, ytilde))
            info[(model, name)] = dict(fitted.info)
    forecasts = pd.concat(frames, ignore_index=True)
    shown = [lv for lv in levels if f"yhat_lo_{lv}" in forecasts.columns]
    return Reconciled(forecasts, pd.DataFrame(diags), info, level=shown)


# ----------------------------------------------------------------------------- inputs
def _normalize_methods(methods: Mapping[str, Any] | Sequence[Any] | None) -> dict[str, Any]:
    if methods is None:
        from htsforecast.reconciliation._methods import BottomUp, MinTrace

        return {"bu": BottomUp(), "mint_shrink": MinTrace("mint_shrink")}
    if not isinstance(methods, Mapping):
        methods = {_default_name(m): m for m in methods}
    for name, m in methods.items():
        if not hasattr(m, "fit"):
            raise ReconciliationError(f"method {name!r} is not a reconciliation method: {m!r}")
        if name == "base":
            raise ReconciliationError("'base' is reserved for the unreconciled forecasts.")
    return dict(methods)


def _default_name(m: Any) -> str:
    parts = [type(m).__name__]
    for attr in ("method", "level", "top_down_method"):
        if hasattr(m, attr):
            parts.append(str(getattr(m, attr)))
    return "_".join(parts)


def _unpack_base(base: Any, Y_df: pd.DataFrame | None):  # noqa: ANN202
    """Return (tidy forecasts, tidy insample or None, samples dict, levels)."""
    if isinstance(base, pd.DataFrame):
        return from_nixtla_frames(base, Y_df)
    for attr in ("forecasts", "insample"):
        if not hasattr(base, attr):
            raise ReconciliationError(
                "base must be the result of htsforecast.forecast or a Nixtla Y_hat_df DataFrame."
            )
    samples = dict(getattr(base, "samples", {}) or {})
    ids = list(getattr(base, "ids", []) or [])
    samples = {k: (ids, val) for k, val in samples.items()}
    return base.forecasts, base.insample, samples, list(getattr(base, "level", []) or [])


def from_nixtla_frames(
    Y_hat_df: pd.DataFrame, Y_df: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict, list[int]]:
    """Convert hierarchicalforecast-style frames to htsforecast's tidy ones.

    ``Y_hat_df``: ``unique_id, ds, <model>, <model>-lo-80, <model>-hi-80 ...``;
    ``Y_df``: ``unique_id, ds, y`` plus one fitted-value column per model.
    """
    df = Y_hat_df.reset_index() if "unique_id" not in Y_hat_df.columns else Y_hat_df
    v.require_columns(df, ["unique_id", "ds"], "Y_hat_df")
    models = [
        c
        for c in df.columns
        if c not in ("unique_id", "ds", "cutoff") and "-lo-" not in c and "-hi-" not in c
    ]
    levels = sorted({int(c.rsplit("-", 1)[1]) for c in df.columns if "-lo-" in c})
    parts = []
    for m in models:
        part = pd.DataFrame(
            {
                "unique_id": df["unique_id"].astype(str),
                "ds": df["ds"],
                "model": m,
                "yhat": df[m].to_numpy(float),
            }
        )
        for lv in levels:
            for side in ("lo", "hi"):
                col = f"{m}-{side}-{lv}"
                if col in df.columns:
                    part[f"yhat_{side}_{lv}"] = df[col].to_numpy(float)
        parts.append(part)
    fc = pd.concat(parts, ignore_index=True)
    insample = None
    if Y_df is not None:
        ydf = Y_df.reset_index() if "unique_id" not in Y_df.columns else Y_df
        v.require_columns(ydf, ["unique_id", "ds", "y"], "Y_df")
        ins = []
        for m in models:
            fitted = ydf[m].to_numpy(float) if m in ydf.columns else np.full(len(ydf), np.nan)
            ins.append(
                pd.DataFrame(
                    {
                        "unique_id": ydf["unique_id"].astype(str),
                        "ds": ydf["ds"],
                        "model": m,
                        "y": ydf["y"].to_numpy(float),
                        "fitted": fitted,
                        "resid": ydf["y"].to_numpy(float) - fitted,
                    }
                )
            )
        insample = pd.concat(ins, ignore_index=True)
    return fc, insample, {}, levels


def _problem(hier: Hierarchy) -> Problem:
    index = {n: i for i, n in enumerate(hier.node_ids)}
    levels = {k: np.array([index[n] for n in ids]) for k, ids in hier.levels.items()}
    cols = list(hier.columns)
    path: list[str] | None
    if cols:
        path = ["total"] + ["/".join(cols[: k + 1]) for k in range(len(cols))]
        path = path if all(p in levels for p in path) else None
    else:
        path = list(levels) if hier.is_strict else None
    return Problem(S=hier.S, levels=levels, default_path=path)


def _pivot(
    frame: pd.DataFrame, col: str | list[str], node_ids: list[str], what: str
) -> tuple[np.ndarray | list[np.ndarray], pd.Index]:
    """(node x date) matrix of ``frame[col]`` in ``node_ids`` order (O(rows), no pivot_table).

    With a list of columns, one matrix per column is returned (the row/date codes are computed
    once).
    """
    uid = frame["unique_id"]
    rows = pd.Index(node_ids).get_indexer(uid if uid.dtype == object else uid.astype(str))
    if (rows < 0).any():
        extra = pd.unique(frame["unique_id"][rows < 0])
        raise DataError(f"{what} has unknown node(s) {v.format_examples(list(extra))}.")
    t_codes, dates = pd.factorize(frame["ds"], sort=True)
    present = np.zeros(len(node_ids), dtype=bool)
    present[rows] = True
    if not present.all():
        missing = [node_ids[i] for i in np.flatnonzero(~present)]
        raise DataError(
            f"{what} has no rows for {len(missing)} node(s) of the hierarchy, e.g. "
            f"{v.format_examples(missing)}. Forecast every node (Hierarchy.aggregate gives them "
            "all)."
        )
    outs = []
    for c in [col] if isinstance(col, str) else col:
        out = np.full((len(node_ids), len(dates)), np.nan)
        out[rows, t_codes] = frame[c].to_numpy(dtype=float)
        outs.append(out)
    return (outs[0] if isinstance(col, str) else outs), pd.Index(dates)


def _forecast_arrays(fcm: pd.DataFrame, node_ids: list[str], model: str):  # noqa: ANN202
    yhat, dates = _pivot(fcm, "yhat", node_ids, f"forecasts of model {model!r}")
    if not np.all(np.isfinite(yhat)):
        rows = np.unique(np.nonzero(~np.isfinite(yhat))[0])
        raise DataError(
            f"forecasts of model {model!r} contain NaN/inf for node(s) "
            f"{v.format_examples([node_ids[r] for r in rows])}."
        )
    sigma = None
    lo_cols = sorted(c for c in fcm.columns if c.startswith("yhat_lo_"))
    for lo in lo_cols:
        lv = int(lo.rsplit("_", 1)[1])
        hi = f"yhat_hi_{lv}"
        if hi not in fcm.columns:
            continue
        (lo_m, hi_m), _ = _pivot(fcm, [lo, hi], node_ids, "intervals")
        sigma = (hi_m - lo_m) / (2 * norm.ppf(0.5 + lv / 200))
        if not np.isfinite(sigma).all():
            rows = np.unique(np.nonzero(~np.isfinite(sigma))[0])
            raise DataError(
                f"base intervals of model {model!r} are missing for node(s) "
                f"{v.format_examples([node_ids[r] for r in rows])} (e.g. a one-observation "
                "fallback); use intervals='bootstrap' or intervals=None."
            )
        break
    return dates, yhat, sigma


def _with_insample(
    problem: Problem, insample: pd.DataFrame | None, model: str, node_ids: list[str]
) -> Problem:
    if insample is None or len(insample) == 0:
        return problem
    codes, names = pd.factorize(insample["model"])
    if model not in set(names):
        return problem
    ins = insample[codes == list(names).index(model)]
    (y, resid), _ = _pivot(ins, ["y", "resid"], node_ids, f"in-sample data of model {model!r}")
    return replace(problem, y_insample=y, residuals=resid)  # shares the membership cache


# ----------------------------------------------------------------------------- intervals
def _interval_bounds(
    intervals,
    fitted: Fitted,
    problem: Problem,
    hier: Hierarchy,
    yhat,
    ytilde,
    sigma,
    levels,
    model_samples,
    n_samples,
    seed,
    nonnegative,
    model,
):  # noqa: ANN001, ANN202
    if not levels or intervals is None:
        return {}
    if intervals == "gaussian":
        if sigma is None:
            raise ReconciliationError(
                f"gaussian intervals need base intervals for model {model!r}: forecast with "
                "level=[...] or choose intervals='bootstrap'."
            )
        sd = np.sqrt(np.maximum(fitted.variance(sigma**2), 0.0))
        out = {}
        for lv in levels:
            z = norm.ppf(0.5 + lv / 200)
            lo, hi = ytilde - z * sd, ytilde + z * sd
            if nonnegative:
                lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
            out[lv] = (lo, hi)
        return out
    if intervals == "bootstrap":
        paths = _bootstrap_paths(problem, yhat, n_samples, seed, model)
    elif intervals == "samples":
        if model_samples is None:
            raise ReconciliationError(f"model {model!r} has no predictive samples.")
        ids, arr = model_samples
        order = pd.Index(ids).get_indexer(hier.node_ids)
        if (order < 0).any():
            raise DataError(f"samples of model {model!r} miss some nodes of the hierarchy.")
        paths = arr[order]
    else:
        raise ReconciliationError(f"unknown intervals {intervals!r}: gaussian, bootstrap, samples.")
    n, h, s = paths.shape
    flat = paths.reshape(n, h * s)
    steps = np.repeat(np.arange(h), s)
    rec = np.asarray(hier.S @ fitted.bottom(flat, "samples", steps)).reshape(n, h, s)
    out = {}
    for lv in levels:
        q = np.quantile(rec, [0.5 - lv / 200, 0.5 + lv / 200], axis=2)
        # with nonnegative=True the point forecast comes from the non-negative projection and
        # the paths are clipped, so a bound can cross the point: widen the bound to it
        out[lv] = (np.minimum(q[0], ytilde), np.maximum(q[1], ytilde))
    return out


def _bootstrap_paths(problem: Problem, yhat: np.ndarray, n_samples: int, seed: int, model: str):  # noqa: ANN202
    if problem.residuals is None:
        raise ReconciliationError(f"bootstrap intervals need in-sample residuals of {model!r}.")
    keep = np.all(np.isfinite(problem.residuals), axis=0)
    R = problem.residuals[:, keep]
    if R.shape[1] < 2:
        raise ReconciliationError("bootstrap intervals need at least 2 complete residual periods.")
    rng = np.random.default_rng(seed)
    h = yhat.shape[1]
    idx = rng.integers(0, R.shape[1], size=(h, n_samples))  # same time index for every node
    return yhat[:, :, None] + R[:, idx]


# ----------------------------------------------------------------------------- outputs
def _base_frame(fcm: pd.DataFrame, levels: list[int]) -> pd.DataFrame:
    cols = ["unique_id", "ds", "model", "yhat"]
    for lv in levels:
        cols += [c for c in (f"yhat_lo_{lv}", f"yhat_hi_{lv}") if c in fcm.columns]
    out = fcm[cols].copy()
    out.insert(3, "method", "base")
    return out


def _tidy(node_ids, dates, model, method, ytilde, bounds) -> pd.DataFrame:  # noqa: ANN001
    n, h = ytilde.shape
    out = pd.DataFrame(
        {
            "unique_id": np.repeat(np.asarray(node_ids, dtype=object), h),
            "ds": np.tile(np.asarray(dates), n),
            "model": model,
            "method": method,
            "yhat": ytilde.ravel(),
        }
    )
    for lv, (lo, hi) in bounds.items():
        out[f"yhat_lo_{lv}"] = lo.ravel()
        out[f"yhat_hi_{lv}"] = hi.ravel()
    return out


def _diagnostics(problem: Problem, model: str, method: str, yhat, ytilde) -> dict:  # noqa: ANN001
    m = problem.m
    viol = np.abs(np.asarray(problem.S @ ytilde[-m:]) - ytilde).max() if ytilde.size else 0.0
    adj = np.abs(ytilde - yhat)
    row = {
        "model": model,
        "method": method,
        "max_coherence_violation": float(viol),
        "negatives_before": int((yhat < 0).sum()),
        "negatives_after": int((ytilde < 0).sum()),
        "mean_abs_adjustment": float(adj.mean()),
    }
    for lv, rows in problem.levels.items():  # row indices of each level's nodes
        row[f"adjustment[{lv}]"] = float(adj[rows].mean())
    return row
