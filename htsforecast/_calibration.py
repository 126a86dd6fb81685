"""Interval calibration from cross-validation: width factors per horizon step.

Reconciled intervals inherit the base models' in-sample error variances, which are usually too
small for h-step forecasts (fpp3 §5.5; Panagiotelis et al. 2023), and reconciliation with an
estimated ``W`` narrows them further. The job's rolling-origin windows (training data only) show
by how much, and one factor ``c`` per (model, method, horizon step ``j``) rescales the intervals
of the final forecasts. Two targets:

``target="crps"`` (the job's default): minimum-CRPS estimation of the spread (Gneiting et al.
2005). Every quantile ``q`` (the interval bounds of all levels, the point forecast as median)
becomes ``ŷ + c (q - ŷ)``; ``c`` minimises the mean pinball loss of those quantiles over the
window forecasts of step ``j`` (the weighted interval score, a CRPS approximation; Bracher et al.
2021), each node's loss divided by its in-sample seasonal-naive scale when ``scale`` is given
(scale-free, as MASE and the CRPS skill score). The loss is convex in ``c``. This calibrates
and sharpens the whole distribution, and is robust to a few extreme window errors.

What ``c`` multiplies, the *basis* (``basis=``): the pipeline's own offsets ``q - ŷ``
(``"interval"``), or each node's scale times the standard normal quantile, ``s z_p``
(``"scale"``; the job's ``s`` is the in-sample seasonal-naive MAE). One factor per step can
only fix a width that is wrong by the same ratio at every node. Some methods' widths are not:
top-down gives each bottom node ``share² var(top)`` and ignores its own noise, so on fpp3
tourism (training windows only, ETS base) the step-1 factor of ``td_fp`` fitted per level ran
from 0.8 (total) to 8.2 (region x purpose), and the pooled factor (5.8) left held-out 80 %
coverage at 59 % (62 % with a factor per level, as nodes of one level differ too); on the scale
basis it was 73 %, with an 11 % lower pinball loss. ``"auto"`` (the job's choice) fits both bases
per (model, method) and keeps the one with the smaller minimised loss on the windows (ties: the
pipeline's own widths; above :data:`_CHOICE_ROWS` rows the choice is made on a fixed random
subset, then only the chosen basis is fitted on all rows). Intervals of a node without a
positive scale are left as they are on the scale basis.

``target="coverage"``: split conformal per level (normalised conformal prediction;
Papadopoulos et al. 2008, Lei et al. 2018). The score of a window forecast is
``|y - m| / w`` (``m``, ``w`` the midpoint and half-width of its interval); the
``ceil((n + 1) L / 100)``-th smallest of the ``n`` scores is the factor for level ``L``, and
``[m - c w, m + c w]`` covers exactly the scores ``<= c``.

Scores are pooled over every node and, with ``pooled=True``, over the neighbouring steps
``j - 1, j, j + 1`` (as :class:`~htsforecast.models.Conformal`), which smooths the factors along
the horizon. Levels stay nested.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from htsforecast.errors import DataError
from htsforecast.models._conformal import conformal_quantile, pool_neighbours

__all__ = ["interval_factors", "calibrate_intervals"]

_KEYS = ["model", "method"]


def interval_factors(
    cv_forecasts: pd.DataFrame,
    level: Sequence[int],
    pooled: bool = True,
    target: Literal["crps", "coverage"] = "crps",
    scale: Mapping[str, float] | None = None,
    basis: Literal["interval", "scale", "auto"] = "interval",
) -> pd.DataFrame:
    """Width factors of every (model, method, level, horizon step) from CV window forecasts.

    Parameters
    ----------
    cv_forecasts : DataFrame
        Held-out window forecasts with their actuals: ``unique_id, model, method, yhat,
        yhat_lo_L, yhat_hi_L, y, horizon`` (:attr:`htsforecast.CVResult.forecasts`), training
        data only.
    level : list of int
        The interval levels (each needs its ``yhat_lo_L`` / ``yhat_hi_L``).
    pooled : bool
        Pool the scores of steps ``j - 1, j, j + 1`` for step ``j`` (default).
    target : {"crps", "coverage"}
        Minimum mean pinball loss of all quantiles around ``ŷ`` (one factor for every level), or
        split-conformal coverage around each interval's midpoint (one factor per level); see the
        module docstring.
    scale : mapping unique_id -> float, optional
        ``"crps"`` only: each node's loss is divided by its scale (e.g. the in-sample
        seasonal-naive MAE); nodes without a positive finite scale count with weight 1.
    basis : {"interval", "scale", "auto"}
        ``"crps"`` only: what the factor multiplies. ``"interval"`` (default): the pipeline's
        own quantile offsets ``q - ŷ``. ``"scale"`` (needs ``scale``): each node's ``scale``
        times the standard normal quantile ``z_p``, whatever the method's covariance says.
        ``"auto"``: per (model, method) the basis whose fitted factors leave the smaller
        scaled pinball loss on these windows (``"interval"`` without ``scale``).

    Returns
    -------
    DataFrame
        ``model, method, level, horizon, factor, n_scores, center, basis`` (``center``:
        ``"point"`` or ``"midpoint"``, what :func:`calibrate_intervals` scales around;
        ``basis``: ``"interval"`` or ``"scale"``). Rows whose width is zero do not count
        (scaling cannot change them); ``factor`` is NaN with no score.
    """
    need = {"model", "method", "y", "yhat", "horizon"} | {
        f"yhat_{s}_{lv}" for lv in level for s in ("lo", "hi")
    }
    if target == "crps":
        need.add("unique_id")
    elif target != "coverage":
        raise DataError(
            f"interval calibration target must be 'crps' or 'coverage', got {target!r}."
        )
    if basis not in ("interval", "scale", "auto"):
        raise DataError(
            f"interval calibration basis must be 'interval', 'scale' or 'auto', got {basis!r}."
        )
    if basis == "scale" and (target != "crps" or scale is None):
        raise DataError("interval calibration basis='scale' needs target='crps' and the node "
                        "scales (scale=); pass basis='interval' or 'auto' otherwise.")  # fmt: skip
    missing = sorted(need - set(cv_forecasts.columns))
    if missing:
        raise DataError(f"interval calibration: the CV forecasts have no column(s) {missing}.")
    rows = []
    pipelines = cv_forecasts.groupby(_KEYS, sort=False, observed=True).indices
    for (model, method), at in pipelines.items():  # one pipeline's rows copied at a time
        part = cv_forecasts.take(at)
        steps = part["horizon"].to_numpy(dtype=np.int64)
        h = int(steps.max())
        chosen = "interval"
        if target == "crps":
            factor, n, chosen = _crps_factors(part, level, steps, (h, pooled), scale, basis)
            per_level = {lv: (factor, n) for lv in level}
        else:
            per_level = {lv: _conformal_factors(part, lv, steps, h, pooled) for lv in level}
        center = "point" if target == "crps" else "midpoint"
        for lv, (factor, n) in per_level.items():
            for j in range(h):
                rows.append((model, method, lv, j + 1, float(factor[j]), int(n[j]), center, chosen))
    cols = ["model", "method", "level", "horizon", "factor", "n_scores", "center", "basis"]
    return pd.DataFrame(rows, columns=cols)


def _conformal_factors(part, lv, steps, h, pooled) -> tuple[np.ndarray, np.ndarray]:
    err = _scores(part, lv, steps, h)  # (1, k, h)
    if pooled and h > 1:
        err = pool_neighbours(err)
    return conformal_quantile(err, lv)[0], np.isfinite(err).sum(axis=1)[0]


def _crps_factors(part, level, steps, plan, scale, basis) -> tuple[np.ndarray, np.ndarray, str]:
    """Per step: the ``c`` minimising the scaled mean pinball loss of ``ŷ + c D``, and the basis.

    ``D`` is the pipeline's own offsets ``q - ŷ`` (basis ``"interval"``) or ``scale * z_p``
    (``"scale"``); ``"auto"`` fits both and keeps the one with the smaller loss.
    """
    yhat = part["yhat"].to_numpy(dtype=float)
    e = part["y"].to_numpy(dtype=float) - yhat
    probs, dev = [0.5], [np.zeros_like(yhat)]
    for lv in level:
        for p, col in ((0.5 - lv / 200, f"yhat_lo_{lv}"), (0.5 + lv / 200, f"yhat_hi_{lv}")):
            probs.append(p)
            dev.append(part[col].to_numpy(dtype=float) - yhat)
    D, P = np.column_stack(dev), np.asarray(probs)
    del dev  # the columns live on in D only
    s, w = np.full(len(part), np.nan), np.ones(len(part))
    if scale is not None:
        s = part["unique_id"].astype(str).map(scale).to_numpy(dtype=float)
        w = np.where(np.isfinite(s) & (s > 0), 1.0 / np.where(s > 0, s, 1.0), 1.0)
    fits: dict[str, Callable[[np.ndarray | slice], tuple[np.ndarray, np.ndarray]]] = {}
    if basis in ("interval", "auto"):  # offsets and usable rows of each basis, for some rows
        fits["interval"] = lambda r: (D[r], np.isfinite(e[r]) & np.isfinite(D[r]).all(axis=1)
                                      & (np.abs(D[r]).sum(axis=1) > 0))  # fmt: skip
    if basis in ("scale", "auto") and scale is not None:
        from scipy.stats import norm

        has, z = np.isfinite(s) & (s > 0), norm.ppf(P)
        fits["scale"] = lambda r: (np.where(has[r], s[r], 0.0)[:, None] * z,
                                   np.isfinite(e[r]) & has[r])  # fmt: skip
    terms = (e, P, w, steps, plan)
    if len(fits) == 1:
        chosen = next(iter(fits))
        return (*_fit_factors(*fits[chosen](slice(None)), *terms, loss=False)[:2], chosen)
    # "auto": each basis fitted on (a fixed random subset of at most _CHOICE_ROWS of) the rows,
    # the smaller minimised loss wins (both have one free factor per step); ties keep "interval".
    # Only the chosen basis's offsets are then built for every row (memory at M5 size).
    pick = np.arange(len(e))
    if len(e) > _CHOICE_ROWS:
        pick = np.sort(np.random.default_rng(0).choice(len(e), _CHOICE_ROWS, replace=False))
    sub = (e[pick], P, w[pick], steps[pick], plan)
    tried = {b: _fit_factors(*offsets(pick), *sub) for b, offsets in fits.items()}
    chosen = min(tried, key=lambda b: tried[b][2])
    if len(pick) < len(e):
        return (*_fit_factors(*fits[chosen](slice(None)), *terms, loss=False)[:2], chosen)
    return (*tried[chosen][:2], chosen)


_CHOICE_ROWS = 50_000  # rows per pipeline behind the "auto" choice of basis (its cost at M5 size)


def _fit_factors(D, ok, e, P, w, steps, plan, loss=True) -> tuple[np.ndarray, np.ndarray, float]:
    """Factors per step for the offsets ``D`` (rows ``ok``), their counts and (``loss``) the
    summed change of the loss from ``c = 0`` to the factors (the same baseline for any basis)."""
    h, pooled = plan
    rows = np.flatnonzero(ok)
    rows = rows[np.argsort(steps[rows], kind="stable")]  # by step, rows in order within one
    bounds = np.searchsorted(steps[rows], np.arange(h + 2))  # step s: rows[bounds[s]:bounds[s+1]]
    runs, slope_by_step = {}, np.zeros(h + 2)  # per step: sorted kinks, their jumps; slope at 0+
    for j in range(1, h + 1):  # one step at a time: a step's terms are small (memory)
        r = rows[bounds[j] : bounds[j + 1]]
        kink, jump, slope0 = _pinball_terms(e[r], D[r], P, w[r])
        order = np.argsort(kink, kind="stable")
        runs[j], slope_by_step[j] = (kink[order], jump[order]), slope0.sum()
    factor, change = np.full(h, np.nan), 0.0
    n = np.bincount(steps[ok], minlength=h + 2)[1 : h + 1]  # rows per step 1..h
    if pooled:
        n = n + np.r_[0, n[:-1]] + np.r_[n[1:], 0]
    for j in range(1, h + 1):
        if n[j - 1]:
            win = range(max(j - 1, 1), min(j + 1, h) + 1) if pooled else range(j, j + 1)
            k = np.concatenate([runs[s][0] for s in win])
            merge = np.argsort(k, kind="stable")  # merges the sorted runs in linear time
            k, a = k[merge], np.concatenate([runs[s][1] for s in win])[merge]
            slope = float(slope_by_step[list(win)].sum())
            factor[j - 1] = c = _argmin_sorted(k, a, slope)
            if not loss:
                continue
            after = k > 0  # loss(c) - loss(0): the slope at 0+, plus each kink passed
            change += slope * c + float(a[after] @ np.maximum(c - k[after], 0.0))
    return factor, n, change


_C_LO, _C_HI = 1 / 50, 50.0  # the range of a calibration factor


def _pinball_terms(
    e: np.ndarray, D: np.ndarray, P: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kinks, slope jumps and slopes at ``c = 0+`` of ``w_i pinball_p(e_i - c D_ip)``.

    Each term is piecewise linear in ``c`` with one kink at ``e / d``, where its slope rises by
    ``w |d|``; at ``c = 0+`` its slope is ``-w p d`` if ``e - 0+ d > 0`` and ``w (1 - p) d``
    otherwise. Terms with ``d = 0`` or ``w = 0`` do not depend on ``c`` and are dropped.
    """
    q = D.shape[1]
    d, ee = D.ravel(), np.repeat(e, q)
    p, a = np.tile(P, D.shape[0]), np.repeat(w, q)
    keep = (d != 0) & (a > 0)
    d, ee, p, a = d[keep], ee[keep], p[keep], a[keep]
    positive = (ee > 0) | ((ee == 0) & (d < 0))  # sign of the residual just above c = 0
    slope0 = a * np.where(positive, -p * d, (1 - p) * d)
    return ee / d, a * np.abs(d), slope0


def _argmin_sorted(kink: np.ndarray, jump: np.ndarray, slope: float) -> float:
    """Minimiser over [1/50, 50] of the convex piecewise-linear sum, kinks sorted ascending.

    ``slope``: the sum's slope at ``c = 0+``. The first kink above 0 at which the accumulated
    slope reaches 0, clipped to the range (a convex function's minimum over an interval); 1
    when nothing depends on ``c``.
    """
    if kink.size == 0:
        return 1.0  # no interval width to scale: any factor is as good
    if slope >= 0:
        return _C_LO
    after = kink > 0
    crossing = slope + np.cumsum(jump[after])
    k = int(np.searchsorted(crossing, 0.0, side="left"))
    if k >= crossing.size:
        return _C_HI
    return float(np.clip(kink[after][k], _C_LO, _C_HI))


def _scores(part: pd.DataFrame, lv: int, steps: np.ndarray, h: int) -> np.ndarray:
    """Normalised scores ``|y - m| / w`` laid out (1, k, h): column ``j`` holds step ``j + 1``."""
    lo = part[f"yhat_lo_{lv}"].to_numpy(dtype=float)
    hi = part[f"yhat_hi_{lv}"].to_numpy(dtype=float)
    y = part["y"].to_numpy(dtype=float)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(half > 0, np.abs(y - mid) / half, np.nan)
    k = int(np.bincount(steps).max())
    out = np.full((1, k, h), np.nan)
    for j in range(1, h + 1):
        v = s[steps == j]
        out[0, : len(v), j - 1] = v
    return out


def calibrate_intervals(
    forecasts: pd.DataFrame,
    factors: pd.DataFrame,
    nonnegative: bool = False,
    copy: bool = True,
    scale: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Scale the intervals of ``forecasts`` by ``factors`` (from :func:`interval_factors`).

    Parameters
    ----------
    forecasts : DataFrame
        Tidy ``unique_id, ds, model, method, yhat, yhat_lo_L, yhat_hi_L ...``; the horizon step
        of a row is the rank of its ``ds`` among its series' dates.
    factors : DataFrame
        ``model, method, level, horizon, factor`` and ``center`` (``"point"``: scale around
        ``yhat``; ``"midpoint"``, the default: around the interval's midpoint). Pipelines,
        levels or steps without a finite factor keep their intervals.
    nonnegative : bool
        Clip the scaled bounds at 0 (as non-negative reconciliation does).
    copy : bool
        Work on a copy (default); ``False`` rescales ``forecasts`` in place and returns it
        (saves one copy of a large frame).
    scale : mapping unique_id -> float, optional
        The node scales the factors were fitted with; needed when ``factors`` has rows with
        ``basis == "scale"`` (a table without a ``basis`` column is all ``"interval"``).

    Returns
    -------
    DataFrame
        A frame with ``[m + c (lo - m), m + c (hi - m)]`` in place of each ``[lo, hi]`` (``m``
        the centre), or ``[ŷ - c s z, ŷ + c s z]`` for a pipeline on the ``"scale"`` basis
        (``s`` the node's scale, ``z`` the normal quantile of the level; nodes without a
        positive scale keep their intervals), levels kept nested.
    """
    out = forecasts.copy() if copy else forecasts
    levels = sorted(int(c.rsplit("_", 1)[1]) for c in out.columns if c.startswith("yhat_lo_"))
    if not levels or factors.empty:
        return out
    series = out.groupby(["model", "method", "unique_id"], sort=False, observed=True)
    step = series["ds"].rank(method="first").astype(np.int64).to_numpy()
    table = factors.assign(model=factors["model"].astype(str), method=factors["method"].astype(str))
    for col, default in (("center", "midpoint"), ("basis", "interval")):
        if col not in table.columns:  # tables stored before the column existed
            table[col] = default
    groups = out.groupby(_KEYS, sort=False, observed=True).indices  # positions per pipeline
    scales = _pipeline_scales(out, table, groups, scale)
    yhat = out["yhat"].to_numpy(float)
    top = int(step.max()) + 1 if len(step) else 1
    lo_run: np.ndarray | None = None  # bounds of the narrower levels so far (unclipped)
    hi_run: np.ndarray | None = None
    for lv in levels:  # one level, then one pipeline's rows at a time (memory at M5 size)
        lo, hi = out[f"yhat_lo_{lv}"].to_numpy(float), out[f"yhat_hi_{lv}"].to_numpy(float)
        new_lo, new_hi = lo.copy(), hi.copy()
        for key, rows in groups.items():
            sel = table[(table["model"] == str(key[0])) & (table["method"] == str(key[1]))
                        & (table["level"] == lv)]  # fmt: skip
            by_step = np.full(top, np.nan)
            inside = sel["horizon"].to_numpy(dtype=np.int64)
            keep = (inside >= 0) & (inside < top)
            by_step[inside[keep]] = sel["factor"].to_numpy(dtype=float)[keep]
            c = by_step[step[rows]]
            if key in scales:  # the "scale" basis: ŷ -/+ c s z (nodes without a scale kept)
                from scipy.stats import norm

                ok = np.isfinite(c) & np.isfinite(scales[key])
                r, half = rows[ok], c[ok] * scales[key][ok] * norm.ppf(0.5 + lv / 200)
                new_lo[r], new_hi[r] = yhat[r] - half, yhat[r] + half
                continue
            ok = np.isfinite(c)
            r, c = rows[ok], c[ok]
            mid = yhat[r] if (sel["center"] == "point").any() else (lo[r] + hi[r]) / 2
            new_lo[r], new_hi[r] = mid + c * (lo[r] - mid), mid + c * (hi[r] - mid)
        if lo_run is not None and hi_run is not None:  # a wider level contains narrower ones
            np.fmin(new_lo, lo_run, out=new_lo)
            np.fmax(new_hi, hi_run, out=new_hi)
        lo_run, hi_run = new_lo, new_hi
        if nonnegative:
            new_lo, new_hi = np.maximum(new_lo, 0.0), np.maximum(new_hi, 0.0)
        out[f"yhat_lo_{lv}"], out[f"yhat_hi_{lv}"] = new_lo, new_hi
    return out


def _pipeline_scales(out, table, groups, scale) -> dict:
    """``{(model, method): node scale of each of its rows}`` for the pipelines on the
    ``"scale"`` basis (NaN where a node has no positive scale: its intervals are kept)."""
    on = table.loc[table["basis"] == "scale", _KEYS].drop_duplicates()
    keys = {(m, d) for m, d in on.itertuples(index=False)}
    mine = [key for key in groups if (str(key[0]), str(key[1])) in keys]
    if not mine:
        return {}
    if scale is None:
        raise DataError(
            "calibrate_intervals: the factors of "
            f"{sorted(f'{m}/{d}' for m, d in keys)} are on the 'scale' basis and need the node "
            "scales they were fitted with (scale=, selection.json's calibration 'scale')."
        )
    known = pd.Series(scale, dtype=float)
    known = known[np.isfinite(known.to_numpy()) & (known.to_numpy() > 0)]
    values = np.r_[known.to_numpy(), np.nan]  # position -1 (an unknown node): NaN
    lookup, ids = pd.Index(known.index.astype(str)), out["unique_id"].to_numpy()
    found = {}
    for key in mine:  # one pipeline's ids at a time (no row-wide arrays at M5 size)
        own = pd.Index(ids[groups[key]])
        found[key] = values[lookup.get_indexer(own if own.dtype == object else own.astype(str))]
    return found
