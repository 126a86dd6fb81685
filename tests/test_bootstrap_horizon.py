"""Horizon-aware bootstrap intervals: draws scaled to the base model's h-step spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import isotonic_regression
from scipy.stats import norm

from htsforecast import Hierarchy, forecast, reconcile
from htsforecast.models import Combination, Conformal, Mean, Naive, Selected
from htsforecast.reconciliation import BottomUp, MinTrace
from htsforecast.reconciliation._arrays import (
    BaseArrays,
    _base_sigma,
    _interval_sigma,
    draw_scale,
)

H = 4


def _random_walks(T: int = 400, seed: int = 0) -> tuple[Hierarchy, pd.DataFrame]:
    """Four independent random walks with different step sds under ``a / b``."""
    rng = np.random.default_rng(seed)
    keys = [("x", "xu"), ("x", "xv"), ("y", "yu"), ("y", "yv")]
    sd = [1.0, 2.0, 0.5, 1.5]
    ds = pd.date_range("2000-01-01", periods=T, freq="D")
    rows = [
        pd.DataFrame({"a": a, "b": b, "ds": ds, "y": 100 + rng.normal(0, s, T).cumsum()})
        for (a, b), s in zip(keys, sd, strict=True)
    ]
    hier = Hierarchy.from_formula("a / b")
    return hier, hier.aggregate(pd.concat(rows, ignore_index=True), freq="D")


def _widths(rec: pd.DataFrame, method: str, ids: list[str], lv: int = 80) -> np.ndarray:
    part = rec[rec["method"] == method].assign(w=lambda d: d[f"yhat_hi_{lv}"] - d[f"yhat_lo_{lv}"])
    return part.pivot(index="unique_id", columns="ds", values="w").loc[ids].to_numpy()


def test_draw_scale_by_hand_and_against_scipy_isotonic() -> None:
    sigma = np.array([[1.0, 0.5, 2.0, 1.5], [1.0, 0.5, 2.0, 1.5], [1, 2, np.nan, 3],
                      [1.0, 1.0, 1.0, 1.0]])  # fmt: skip
    R = np.array([[0.5, -0.5], [1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    got = draw_scale(sigma, R)
    # isotonic fit of row 0 and 1: [0.75, 0.75, 1.75, 1.75]; rms 0.5 and 1 (the floor)
    np.testing.assert_allclose(got[0], [1.5, 1.5, 3.5, 3.5])
    np.testing.assert_allclose(got[1], [1.0, 1.0, 1.75, 1.75])
    np.testing.assert_allclose(got[2:], 1.0)  # missing sigma, all-zero residuals: unscaled
    rng = np.random.default_rng(1)
    sig = rng.uniform(0.2, 3.0, (30, 9))
    R = rng.normal(0, 0.1, (30, 50))
    ref = np.array([isotonic_regression(row).x for row in sig])
    rms = np.sqrt((R**2).mean(axis=1))[:, None]
    np.testing.assert_allclose(draw_scale(sig, R), np.maximum(ref, rms) / rms, rtol=1e-12)


def test_interval_sigma_is_exact_for_gaussian_and_least_squares_otherwise() -> None:
    sd = np.array([[1.0, 2.0], [0.5, 3.0]])
    gauss = {lv: (-norm.ppf(0.5 + lv / 200) * sd, norm.ppf(0.5 + lv / 200) * sd)
             for lv in (10, 80, 95)}  # fmt: skip
    np.testing.assert_allclose(_interval_sigma(gauss), sd, rtol=1e-12)
    base = BaseArrays("m", np.array([]), np.zeros((2, 2)), gauss)
    np.testing.assert_allclose(_base_sigma(base, ["a", "b"]), sd, rtol=1e-12)
    z1, z2 = norm.ppf(0.55), norm.ppf(0.975)
    odd = {10: (np.array([-0.01]), np.array([0.01])), 95: (np.array([-4.0]), np.array([4.0]))}
    expect = (z1 * 0.01 + z2 * 4.0) / (z1**2 + z2**2)
    np.testing.assert_allclose(_interval_sigma(odd), [expect])


def test_random_walk_bootstrap_grows_as_sqrt_h() -> None:
    hier, Y = _random_walks()
    base = forecast(Y, models={"naive": Naive()}, h=H, freq="D", level=[80])
    rec = reconcile(base, hier, {"bu": BottomUp()}, intervals="bootstrap", n_samples=4000).forecasts
    steps = np.sqrt(np.arange(1, H + 1))
    for method in ("base", "bu"):
        w = _widths(rec, method, hier.node_ids)
        np.testing.assert_allclose(w / w[:, :1], np.tile(steps, (len(w), 1)), rtol=0.08)
    # the closed form: bottom-up of independent walks, sd sqrt(sum of the bottoms' sd^2) sqrt(h)
    wide = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids].to_numpy()
    step_sd = np.sqrt((np.diff(wide[-4:], axis=1) ** 2).mean(axis=1))
    S = hier.S.toarray()
    node_sd = np.sqrt(S**2 @ step_sd**2)
    closed = 2 * norm.ppf(0.9) * node_sd[:, None] * steps[None, :]
    np.testing.assert_allclose(_widths(rec, "bu", hier.node_ids), closed, rtol=0.1)


@pytest.mark.parametrize(
    "model",
    [
        Combination({"naive": Naive(), "mean": Mean()}),
        Selected(
            {"naive": Naive(), "mean": Mean(), "conf": Conformal(Naive(), n_windows=2)}, n_windows=2
        ),  # fmt: skip
        Conformal(Naive(), n_windows=2),  # noisy, non-monotone base widths
    ],
    ids=["combination", "selected", "conformal"],
)
def test_auto_type_models_give_finite_monotone_growth(model) -> None:
    hier, Y = _random_walks(T=200, seed=3)  # enough residual periods for smooth quantiles
    base = forecast(Y, models={"m": model}, h=H, freq="D", level=[80, 95])
    lo, hi = base.lo["m"], base.hi["m"]
    sigma = _interval_sigma({lv: (lo[lv], hi[lv]) for lv in (80, 95)})
    resid = (base.insample.pivot(index="unique_id", columns="ds", values="resid")
             .loc[base.ids].to_numpy())  # fmt: skip
    resid = resid[:, np.isfinite(resid).all(axis=0)]
    scale = draw_scale(sigma, resid)
    assert np.isfinite(scale).all() and (scale >= 1 - 1e-12).all()
    assert (np.diff(scale, axis=1) >= -1e-12).all()  # non-decreasing along the horizon
    kw = dict(intervals="bootstrap", n_samples=4000, seed=5)
    methods = {"bu": BottomUp(), "shr": MinTrace("mint_shrink")}
    rec = reconcile(base, hier, methods, **kw).forecasts
    again = reconcile(base, hier, methods, **kw).forecasts
    pd.testing.assert_frame_equal(rec, again)  # the seed makes it deterministic
    other = reconcile(base, hier, methods, **{**kw, "seed": 6}).forecasts
    assert not np.allclose(rec["yhat_lo_80"], other["yhat_lo_80"])
    for method in ("bu", "shr"):
        w = _widths(rec, method, hier.node_ids)
        ratio = w[:, -1] / w[:, 0]
        assert np.isfinite(ratio).all() and (ratio >= 0.95).all() and (ratio <= 4).all()
        assert (w[:, 1:] >= 0.9 * w[:, :-1]).all()  # monotone up to sampling noise
