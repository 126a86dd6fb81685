"""ERM (closed form, vs hierarchicalforecast) and fable's covariance convention for MinTrace."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from htsforecast import ReconciliationError
from htsforecast.reconciliation import ERM, MinTrace
from htsforecast.reconciliation._covariance import w_cov, w_shrink
from htsforecast.reconciliation._methods import Problem

# total; A, B; X, Y (grouped); 4 bottoms A/X, A/Y, B/X, B/Y
S_DENSE = np.array(
    [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1], *np.eye(4)]
)


def _problem(seed: int = 0, T: int = 30, with_nan: bool = False) -> tuple[Problem, np.ndarray]:
    rng = np.random.default_rng(seed)
    bottom = 10 + rng.normal(0, 1, (4, T)).cumsum(axis=1)
    y = S_DENSE @ bottom
    fitted = y + rng.normal(0, 0.5, y.shape) + 0.3  # biased, correlated-free fitted values
    if with_nan:
        fitted[2, :3] = np.nan
    levels = {"total": np.array([0]), "a": np.array([1, 2]), "b": np.array([3, 4]),
              "a/b": np.arange(5, 9)}  # fmt: skip
    prob = Problem(sp.csr_matrix(S_DENSE), levels, None, y, y - fitted)
    yhat = y[:, -1:] + rng.normal(0, 1, (9, 4))
    return prob, yhat


def test_erm_matches_hierarchicalforecast() -> None:
    from hierarchicalforecast.methods import ERM as PeerERM

    prob, yhat = _problem(with_nan=True)
    fitted = prob.y_insample - prob.residuals
    fit = ERM().fit(prob, yhat)
    ours = S_DENSE @ fit.bottom(yhat)
    with pytest.warns(UserWarning, match="NaN"):
        peer = PeerERM(method="closed").fit_predict(
            S=S_DENSE.astype(float), y_hat=yhat, y_insample=prob.y_insample,
            y_hat_insample=fitted,
        )["mean"]  # fmt: skip
    np.testing.assert_allclose(ours, peer, rtol=1e-8, atol=1e-8)
    assert fit.info["erm_periods"] == 4


def test_erm_closed_form_by_hand_and_coherent() -> None:
    prob, yhat = _problem(seed=3)
    h = yhat.shape[1]
    Ya, Yf = prob.y_insample[:, -h:], (prob.y_insample - prob.residuals)[:, -h:]
    B = np.linalg.solve(S_DENSE.T @ S_DENSE, S_DENSE.T @ Ya)  # (m, h)
    P = B @ np.linalg.pinv(Yf)  # least squares of Ya ≈ S P Yf with minimum norm
    fit = ERM().fit(prob, yhat)
    np.testing.assert_allclose(fit.bottom(yhat), P @ yhat, rtol=1e-8)
    out = S_DENSE @ fit.bottom(yhat)
    np.testing.assert_allclose(out[0], out[5:].sum(axis=0))  # coherent
    var = fit.variance(np.ones_like(yhat))
    np.testing.assert_allclose(var[:, 0], ((S_DENSE @ P) ** 2).sum(axis=1))


def test_erm_needs_insample() -> None:
    prob, yhat = _problem()
    prob.residuals = None
    with pytest.raises(ReconciliationError, match="ERM needs in-sample"):
        ERM().fit(prob, yhat)


def _fable_shrink_dense(R: np.ndarray) -> np.ndarray:
    """fabletools' shrink.estim, written out for residuals R (n, T)."""
    res = R.T  # (T, n) as in R
    T = res.shape[0]
    covm = res.T @ res / T
    tar = np.diag(np.diag(covm))
    sd = np.sqrt(np.diag(covm))
    corm = covm / np.outer(sd, sd)
    xs = res / sd
    v = (1 / (T * (T - 1))) * ((xs**2).T @ (xs**2) - (1 / T) * (xs.T @ xs) ** 2)
    np.fill_diagonal(v, 0)
    d = (corm - np.eye(len(sd))) ** 2
    lam = max(min(v.sum() / d.sum(), 1), 0)
    return lam * tar + (1 - lam) * covm


def _dense(W) -> np.ndarray:
    return np.diag(W.d) + (0 if W.U is None else W.U @ W.U.T)


def test_fable_covariances_match_dense_formulas() -> None:
    rng = np.random.default_rng(5)
    R = rng.normal(0.4, 1, (6, 12)) + rng.normal(0, 1, (1, 12))  # correlated, non-zero mean
    np.testing.assert_allclose(_dense(w_cov(R, "fable")), R @ R.T / 12, rtol=1e-10)
    W, lam = w_shrink(R, convention="fable")
    np.testing.assert_allclose(_dense(W), _fable_shrink_dense(R), rtol=1e-10)
    assert 0 < lam < 1
    sample, _ = w_shrink(R)
    assert not np.allclose(_dense(sample), _dense(W))  # the conventions do differ here
    with pytest.raises(ReconciliationError, match="unknown covariance convention"):
        w_cov(R, "R")


def test_mintrace_fable_equals_dense_gls() -> None:
    prob, yhat = _problem(seed=7)
    W = _fable_shrink_dense(prob.residuals)
    Wi = np.linalg.inv(W)
    G = np.linalg.solve(S_DENSE.T @ Wi @ S_DENSE, S_DENSE.T @ Wi)
    fit = MinTrace("mint_shrink_fable").fit(prob, yhat)
    np.testing.assert_allclose(fit.bottom(yhat), G @ yhat, rtol=1e-7, atol=1e-9)
    W2 = prob.residuals @ prob.residuals.T / prob.residuals.shape[1]
    G2 = np.linalg.solve(S_DENSE.T @ np.linalg.solve(W2, S_DENSE), np.linalg.solve(W2, S_DENSE).T)
    fit2 = MinTrace("mint_cov_fable").fit(prob, yhat)
    np.testing.assert_allclose(fit2.bottom(yhat), G2 @ yhat, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- bootstrap
def test_bootstrap_bounds_are_not_widened_without_nonnegative() -> None:
    import pandas as pd

    from htsforecast import Hierarchy
    from htsforecast.reconciliation import BottomUp, reconcile

    rng = np.random.default_rng(0)
    keys = pd.DataFrame([(a, a + b) for a in "xy" for b in "uv"], columns=["a", "b"])
    ds = pd.date_range("2000-01-01", periods=20, freq="D")
    df = keys.merge(pd.DataFrame({"ds": ds}), how="cross").assign(
        y=lambda d: rng.normal(10, 1, len(d))
    )
    hier = Hierarchy.from_formula("a / b")
    Y = hier.aggregate(df, freq="D")
    wide = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids]
    Y_df = Y.assign(m=(wide.to_numpy() - 1 - rng.random(wide.shape)).ravel())  # resid in (1, 2)
    future = pd.date_range(ds[-1], periods=3, freq="D")[1:]
    Y_hat_df = pd.DataFrame({"unique_id": np.repeat(hier.node_ids, 2), "ds": np.tile(future, 7),
                             "m": 10.0})  # fmt: skip
    rec = reconcile(Y_hat_df, hier, {"bu": BottomUp()}, Y_df=Y_df, intervals="bootstrap",
                    level=[80], n_samples=200).forecasts  # fmt: skip
    bu = rec[rec["method"] == "bu"]
    assert (bu["yhat_lo_80"] > bu["yhat"]).all()  # every path lies above the point forecast
