"""Reconciliation: oracle tests against hierarchicalforecast, closed forms and properties."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from htsforecast import Hierarchy, ReconciliationError
from htsforecast.datasets import load_tourism
from htsforecast.reconciliation import BottomUp, MiddleOut, MinTrace, TopDown, reconcile
from htsforecast.reconciliation._covariance import w_shrink
from htsforecast.reconciliation._kernel import ConstraintSolver, LowRankW, mint_bottom

H = 8


def make_base(hier: Hierarchy, Y: pd.DataFrame, seed: int = 0, season: int = 4):
    """Deterministic noisy seasonal-naive base forecasts and fitted values, Nixtla style."""
    rng = np.random.default_rng(seed)
    wide = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids]
    fitted = wide.shift(season, axis=1) * (1 + 0.05 * rng.normal(size=wide.shape))
    fc = np.tile(wide.iloc[:, -season:].to_numpy(), H // season + 1)[:, :H]
    fc = fc * (1 + 0.1 * rng.normal(size=fc.shape))
    dates = pd.date_range(wide.columns[-1], periods=H + 1, freq="QS")[1:]
    sd = np.nanstd((wide - fitted).to_numpy(), axis=1)[:, None] * np.sqrt(np.arange(1, H + 1))
    z = 1.2815515655446004  # 80 %
    Y_hat_df = pd.DataFrame(
        {
            "unique_id": np.repeat(wide.index, H),
            "ds": np.tile(dates, len(wide)),
            "m": fc.ravel(),
            "m-lo-80": (fc - z * sd).ravel(),
            "m-hi-80": (fc + z * sd).ravel(),
        }
    )
    long_fit = fitted.stack(future_stack=True).rename("m").reset_index()
    Y_df = Y.merge(long_fit, on=["unique_id", "ds"]).dropna()
    return Y_hat_df, Y_df


@pytest.fixture(scope="module")
def tourism():
    ds = load_tourism()
    data = ds.data[ds.data.ds < "2016-01-01"]
    hier = Hierarchy.from_formula(ds.formula)
    Y = hier.aggregate(data, freq=ds.freq)
    return hier, Y


@pytest.fixture(scope="module")
def tourism_nested():
    ds = load_tourism()
    data = ds.data[ds.data.ds < "2016-01-01"]
    data = data.groupby(["state", "region", "ds"], as_index=False)["y"].sum()
    hier = Hierarchy.from_formula("state / region")
    Y = hier.aggregate(data, freq="QS")
    return hier, Y


def peer(Y_hat_df, Y_df, hier, methods, level=None):
    hf_core = pytest.importorskip("hierarchicalforecast.core")
    S_df, tags = hier.to_nixtla()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hr = hf_core.HierarchicalReconciliation(methods)
        kw = {"level": level, "intervals_method": "normality"} if level else {}
        return hr.reconcile(Y_hat_df=Y_hat_df, Y_df=Y_df, S_df=S_df, tags=tags, **kw)


def ours_series(rec, method, col="yhat"):
    fc = rec.forecasts
    return fc[fc.method == method].set_index(["unique_id", "ds"])[col]


# ----------------------------------------------------------------------------- oracle
def test_oracle_grouped_tourism_points(tourism):
    hm = pytest.importorskip("hierarchicalforecast.methods")
    hier, Y = tourism
    Y_hat_df, Y_df = make_base(hier, Y)
    ours = reconcile(
        Y_hat_df,
        hier,
        {
            "bu": BottomUp(),
            "ols": MinTrace("ols"),
            "wls_struct": MinTrace("wls_struct"),
            "wls_var": MinTrace("wls_var"),
            "mint_shrink": MinTrace("mint_shrink"),
        },
        Y_df=Y_df,
        intervals=None,
    )
    theirs = peer(
        Y_hat_df,
        Y_df,
        hier,
        [
            hm.BottomUp(),
            hm.MinTrace("ols"),
            hm.MinTrace("wls_struct"),
            hm.MinTrace("wls_var"),
            hm.MinTrace("mint_shrink"),
        ],
    ).set_index(["unique_id", "ds"])
    cols = {
        "bu": "m/BottomUp",
        "ols": "m/MinTrace_method-ols",
        "wls_struct": "m/MinTrace_method-wls_struct",
        "wls_var": "m/MinTrace_method-wls_var",
        "mint_shrink": "m/MinTrace_method-mint_shrink",
    }
    for method, col in cols.items():
        mine = ours_series(ours, method)
        np.testing.assert_allclose(mine, theirs.loc[mine.index, col], rtol=1e-8, atol=1e-8)
    assert (ours.diagnostics["max_coherence_violation"] < 1e-8).all()


def test_oracle_nested_topdown_middleout_mintcov(tourism_nested):
    hm = pytest.importorskip("hierarchicalforecast.methods")
    hier, Y = tourism_nested
    assert hier.is_strict
    Y_hat_df, Y_df = make_base(hier, Y, seed=1)
    td = ["average_proportions", "proportion_averages", "forecast_proportions"]
    methods = {f"td_{m}": TopDown(m) for m in td}
    methods |= {f"mo_{m}": MiddleOut("state", m) for m in td}
    methods["mint_cov"] = MinTrace("mint_cov")
    ours = reconcile(Y_hat_df, hier, methods, Y_df=Y_df, intervals=None)
    peer_methods = [hm.TopDown(m) for m in td] + [hm.MiddleOut("state", m) for m in td]
    peer_methods.append(hm.MinTrace("mint_cov"))
    theirs = peer(Y_hat_df, Y_df, hier, peer_methods).set_index(["unique_id", "ds"])
    cols = {f"td_{m}": f"m/TopDown_method-{m}" for m in td}
    cols |= {f"mo_{m}": f"m/MiddleOut_middle_level-state_top_down_method-{m}" for m in td}
    cols["mint_cov"] = "m/MinTrace_method-mint_cov"
    for method, col in cols.items():
        mine = ours_series(ours, method)
        np.testing.assert_allclose(
            mine, theirs.loc[mine.index, col], rtol=1e-8, atol=1e-8, err_msg=method
        )


def test_oracle_gaussian_intervals(tourism):
    hm = pytest.importorskip("hierarchicalforecast.methods")
    hier, Y = tourism
    Y_hat_df, Y_df = make_base(hier, Y, seed=2)
    ours = reconcile(
        Y_hat_df,
        hier,
        {
            "bu": BottomUp(),
            "ols": MinTrace("ols"),
            "wls_struct": MinTrace("wls_struct"),
            "wls_var": MinTrace("wls_var"),
            "mint_shrink": MinTrace("mint_shrink"),
        },
        Y_df=Y_df,
        level=[80],
    )
    theirs = peer(
        Y_hat_df,
        Y_df,
        hier,
        [
            hm.BottomUp(),
            hm.MinTrace("ols"),
            hm.MinTrace("wls_struct"),
            hm.MinTrace("wls_var"),
            hm.MinTrace("mint_shrink"),
        ],
        level=[80],
    ).set_index(["unique_id", "ds"])
    cols = {
        "bu": "m/BottomUp",
        "ols": "m/MinTrace_method-ols",
        "wls_struct": "m/MinTrace_method-wls_struct",
        "wls_var": "m/MinTrace_method-wls_var",
        "mint_shrink": "m/MinTrace_method-mint_shrink",
    }
    for method, col in cols.items():
        for side in ("lo", "hi"):
            mine = ours_series(ours, method, f"yhat_{side}_80")
            ref = theirs.loc[mine.index, f"{col}-{side}-80"]
            np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=1e-6, err_msg=method)


def test_mint_cov_singular_falls_back_with_warning(tourism):
    """On grouped tourism there are 121 aggregates but only 68 complete residual periods:
    C W C' is singular for the sample covariance, so mint_cov falls back to mint_shrink."""
    hier, Y = tourism
    Y_hat_df, Y_df = make_base(hier, Y)
    with pytest.warns(UserWarning, match=r"C W C' is singular: 121 aggregate constraints"):
        rec = reconcile(
            Y_hat_df,
            hier,
            {"cov": MinTrace("mint_cov"), "shr": MinTrace("mint_shrink")},
            Y_df=Y_df,
            intervals=None,
        )
    np.testing.assert_allclose(ours_series(rec, "cov"), ours_series(rec, "shr"))
    assert rec.info[("m", "cov")]["fallback"] == "mint_shrink"


# ----------------------------------------------------------------------------- closed forms
def dense_mint(S: np.ndarray, W: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """Reference: S (S' W^-1 S)^-1 S' W^-1 yhat with dense linear algebra."""
    Wi = np.linalg.inv(W)
    P = np.linalg.solve(S.T @ Wi @ S, S.T @ Wi)
    return S @ P @ yhat


def test_ols_and_wls_struct_closed_form(tourism):
    hier, Y = tourism
    Y_hat_df, Y_df = make_base(hier, Y)
    rec = reconcile(
        Y_hat_df,
        hier,
        {"ols": MinTrace("ols"), "wls": MinTrace("wls_struct")},
        Y_df=Y_df,
        intervals=None,
    )
    S = hier.S.toarray()
    yhat = Y_hat_df.pivot(index="unique_id", columns="ds", values="m").loc[hier.node_ids].to_numpy()
    for name, W in (("ols", np.eye(len(S))), ("wls", np.diag(S.sum(axis=1)))):
        got = ours_series(rec, name).unstack().loc[hier.node_ids].to_numpy()
        np.testing.assert_allclose(got, dense_mint(S, W, yhat), rtol=1e-9, atol=1e-8)


def test_woodbury_equals_dense_shrink():
    rng = np.random.default_rng(3)
    df = random_grouped(rng, n_a=4, n_b=5)
    hier = Hierarchy.from_formula("(a / b) * c")
    hier.aggregate(df)
    n = hier.n_nodes
    resid = rng.normal(size=(n, 12)) @ rng.normal(size=(12, 12))
    W, lam = w_shrink(resid)
    assert 0 < lam < 1
    Wd = np.diag(W.d) + W.U @ W.U.T
    yhat = rng.normal(size=(n, 3)) * 10
    got = hier.S @ mint_bottom(ConstraintSolver(hier.S, W), yhat)
    np.testing.assert_allclose(got, dense_mint(hier.S.toarray(), Wd, yhat), rtol=1e-9, atol=1e-9)
    # the shrunk W itself equals the textbook pairwise formula
    Xc = resid - resid.mean(1, keepdims=True)
    T = resid.shape[1]
    sd = Xc.std(1, ddof=1)
    Z = Xc / sd[:, None]
    w = Z[:, None, :] * Z[None, :, :]
    off = ~np.eye(n, dtype=bool)
    var_r = T / (T - 1) ** 3 * ((w - w.mean(2, keepdims=True)) ** 2).sum(2)
    corr = np.corrcoef(resid)
    lam_ref = min(1.0, var_r[off].sum() / (corr[off] ** 2).sum())
    assert lam == pytest.approx(lam_ref, rel=1e-10)


# ----------------------------------------------------------------------------- properties
def random_grouped(rng: np.random.Generator, n_a: int, n_b: int, T: int = 10) -> pd.DataFrame:
    rows = []
    for i in range(n_a):
        for j in range(rng.integers(1, n_b + 1)):
            for c in ("x", "y"):
                if rng.random() < 0.8 or c == "x":
                    for t in range(T):
                        rows.append((f"a{i}", f"a{i}b{j}", c, t, rng.poisson(20) + 1.0))
    df = pd.DataFrame(rows, columns=["a", "b", "c", "t", "y"])
    df["ds"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(df.pop("t"), unit="D")
    return df


ALL_METHODS = {
    "bu": BottomUp(),
    "td_ahp": TopDown("average_proportions"),
    "td_pha": TopDown("proportion_averages"),
    "td_fp": TopDown("forecast_proportions"),
    "mo_fp": MiddleOut("a", "forecast_proportions"),
    "mo_ahp": MiddleOut("a/b", "average_proportions"),
    "ols": MinTrace("ols"),
    "wls_struct": MinTrace("wls_struct"),
    "wls_var": MinTrace("wls_var"),
    "mint_shrink": MinTrace("mint_shrink"),
    "mint_shrink_nn": MinTrace("mint_shrink", nonnegative=True),
}
PROJECTIONS = ["bu", "ols", "wls_struct", "wls_var", "mint_shrink"]


def frames_from_arrays(hier, Y, yhat, fitted, sd):
    dates = pd.date_range(Y.ds.max(), periods=yhat.shape[1] + 1, freq="D")[1:]
    n, h = yhat.shape
    z = 1.2815515655446004
    Y_hat_df = pd.DataFrame(
        {
            "unique_id": np.repeat(hier.node_ids, h),
            "ds": np.tile(dates, n),
            "m": yhat.ravel(),
            "m-lo-80": (yhat - z * sd).ravel(),
            "m-hi-80": (yhat + z * sd).ravel(),
        }
    )
    Y_df = Y.copy()
    wide = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids]
    Y_df["m"] = (wide.to_numpy() + fitted).ravel()
    return Y_hat_df, Y_df


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), formula=st.sampled_from(["(a / b) * c", "a / b / c"]))
def test_properties_random_hierarchies(seed: int, formula: str) -> None:
    rng = np.random.default_rng(seed)
    df = random_grouped(rng, n_a=int(rng.integers(1, 4)), n_b=3)
    if formula == "a / b / c":
        df["c"] = df["b"] + df["c"]
    hier = Hierarchy.from_formula(formula)
    Y = hier.aggregate(df)
    n, m = hier.S.shape
    resid = rng.normal(size=(n, 10))
    yhat = rng.normal(20, 15, size=(n, 3))  # incoherent, some negative
    Y_hat_df, Y_df = frames_from_arrays(hier, Y, yhat, resid, np.ones((n, 3)))
    rec = reconcile(Y_hat_df, hier, ALL_METHODS, Y_df=Y_df, level=[80])
    S = hier.S
    for name in ALL_METHODS:
        got = ours_series(rec, name).unstack().loc[hier.node_ids].to_numpy()
        np.testing.assert_allclose(S @ got[-m:], got, atol=1e-8, err_msg=name)  # coherent
        lo = ours_series(rec, name, "yhat_lo_80").unstack().loc[hier.node_ids].to_numpy()
        hi = ours_series(rec, name, "yhat_hi_80").unstack().loc[hier.node_ids].to_numpy()
        assert np.all(lo <= got + 1e-9) and np.all(got <= hi + 1e-9), name
    nn = ours_series(rec, "mint_shrink_nn")
    assert (nn >= 0).all()
    assert (ours_series(rec, "mint_shrink_nn", "yhat_lo_80") >= 0).all()
    # coherent base forecasts come back unchanged for the projection methods
    coherent = S @ rng.normal(20, 5, size=(m, 3))
    Y_hat_df2, _ = frames_from_arrays(hier, Y, coherent, resid, np.ones((n, 3)))
    rec2 = reconcile(
        Y_hat_df2, hier, {k: ALL_METHODS[k] for k in PROJECTIONS}, Y_df=Y_df, intervals=None
    )
    for name in PROJECTIONS:
        got = ours_series(rec2, name).unstack().loc[hier.node_ids].to_numpy()
        np.testing.assert_allclose(got, coherent, rtol=1e-9, atol=1e-8, err_msg=name)
    # MinTrace with W = I equals OLS: the kernel with an explicit identity W
    ols = ours_series(rec, "ols").unstack().loc[hier.node_ids].to_numpy()
    explicit = S @ mint_bottom(ConstraintSolver(S, LowRankW(np.ones(n))), yhat)
    np.testing.assert_allclose(ols, explicit, atol=1e-9)
    np.testing.assert_allclose(ols, dense_mint(S.toarray(), np.eye(n), yhat), atol=1e-8)


# ----------------------------------------------------------------------------- robustness
def small_case(seed=0):
    rng = np.random.default_rng(seed)
    df = random_grouped(rng, n_a=3, n_b=3, T=20)
    hier = Hierarchy.from_formula("(a / b) * c")
    Y = hier.aggregate(df)
    n = hier.n_nodes
    return rng, hier, Y, n


def test_zero_and_nan_residuals_give_finite_output():
    rng, hier, Y, n = small_case()
    resid = rng.normal(size=(n, 20))
    resid[-1] = 0.0  # a constant node: all-zero residuals
    resid[-2, :5] = np.nan  # a node with a shorter history
    yhat = rng.normal(20, 5, size=(n, 2))
    Y_hat_df, Y_df = frames_from_arrays(hier, Y, yhat, resid, np.ones((n, 2)))
    with pytest.warns(UserWarning, match=r"5 of 20 residual periods have NaN"):
        rec = reconcile(
            Y_hat_df,
            hier,
            {k: MinTrace(k) for k in ("wls_var", "mint_shrink", "mint_cov")},
            Y_df=Y_df,
            level=[80],
        )
    assert (
        np.isfinite(rec.forecasts.drop(columns=["unique_id", "ds", "model", "method"])).all().all()
    )
    # a node with zero error variance is trusted: its forecast is kept by wls_var
    got = ours_series(rec, "wls_var").unstack().loc[hier.node_ids].to_numpy()
    np.testing.assert_allclose(got[-1], yhat[-1], atol=1e-5)


def test_more_nodes_than_periods_shrink_is_fine_cov_falls_back():
    rng, hier, Y, n = small_case()
    resid = rng.normal(size=(n, 4))  # n nodes >> 4 periods: singular sample covariance
    yhat = rng.normal(20, 5, size=(n, 2))
    Y_hat_df, Y_df = frames_from_arrays(
        hier, Y.groupby("unique_id").tail(4), yhat, resid, np.ones((n, 2))
    )
    with pytest.warns(UserWarning, match="Falling back to mint_shrink"):
        rec = reconcile(Y_hat_df, hier, {"cov": MinTrace("mint_cov")}, Y_df=Y_df, intervals=None)
    assert np.isfinite(ours_series(rec, "cov")).all()


def test_too_few_complete_residual_periods_is_a_clear_error():
    rng, hier, Y, n = small_case()
    resid = rng.normal(size=(n, 20))
    resid[0, :19] = np.nan
    yhat = rng.normal(20, 5, size=(n, 2))
    Y_hat_df, Y_df = frames_from_arrays(hier, Y, yhat, resid, np.ones((n, 2)))
    with pytest.raises(ReconciliationError, match=r"only 1 residual period\(s\) are complete"):
        reconcile(Y_hat_df, hier, {"s": MinTrace("mint_shrink")}, Y_df=Y_df, intervals=None)


def test_errors_name_the_problem():
    rng, hier, Y, n = small_case()
    yhat = rng.normal(20, 5, size=(n, 2))
    Y_hat_df, Y_df = frames_from_arrays(hier, Y, yhat, np.zeros((n, 20)), np.ones((n, 2)))
    with pytest.raises(ValueError, match=r"no rows for 1 node\(s\) of the hierarchy, e.g. total"):
        reconcile(Y_hat_df[Y_hat_df.unique_id != "total"], hier, {"bu": BottomUp()}, intervals=None)
    with pytest.raises(ReconciliationError, match=r"unknown MinTrace method 'mint'"):
        reconcile(Y_hat_df, hier, {"x": MinTrace("mint")}, Y_df=Y_df, intervals=None)
    with pytest.raises(ReconciliationError, match=r"unknown level 'county'"):
        reconcile(Y_hat_df, hier, {"x": MiddleOut("county")}, intervals=None)
    with pytest.raises(ReconciliationError, match=r"Y_df lacks fitted values for model .m."):
        reconcile(Y_hat_df, hier, {"x": MinTrace("wls_var")}, intervals=None)
    with pytest.raises(ReconciliationError, match=r"level 'c' is not on the nesting path"):
        reconcile(Y_hat_df, hier, {"x": MiddleOut("c")}, intervals=None)


def test_grouped_topdown_follows_formula_path_and_custom_path():
    rng, hier, Y, n = small_case()
    yhat = np.abs(rng.normal(20, 5, size=(n, 2)))
    Y_hat_df, Y_df = frames_from_arrays(hier, Y, yhat, np.zeros((n, 20)), np.ones((n, 2)))
    rec = reconcile(
        Y_hat_df,
        hier,
        {
            "fp": TopDown("forecast_proportions"),
            "fp_c": TopDown("forecast_proportions", path=["total", "c", "a/b/c"]),
        },
        intervals=None,
    )
    idx = {k: i for i, k in enumerate(hier.node_ids)}
    fp = ours_series(rec, "fp").unstack().loc[hier.node_ids].to_numpy()
    np.testing.assert_allclose(fp[idx["total"]], yhat[idx["total"]])  # top kept
    # along total -> a: the a-nodes get the total split in proportion to their base forecasts
    a_nodes = [idx[i] for i in hier.levels["a"]]
    share = yhat[a_nodes] / yhat[a_nodes].sum(0)
    np.testing.assert_allclose(fp[a_nodes], share * yhat[idx["total"]])
    fpc = ours_series(rec, "fp_c").unstack().loc[hier.node_ids].to_numpy()
    c_nodes = [idx[i] for i in hier.levels["c"]]
    share_c = yhat[c_nodes] / yhat[c_nodes].sum(0)
    np.testing.assert_allclose(fpc[c_nodes], share_c * yhat[idx["total"]])
    with pytest.raises(ReconciliationError, match=r"level 'a/b' is not nested in 'c'"):
        reconcile(
            Y_hat_df,
            hier,
            {"x": TopDown("forecast_proportions", path=["total", "c", "a/b", "a/b/c"])},
            intervals=None,
        )


def test_bootstrap_is_seeded_and_brackets():
    rng, hier, Y, n = small_case()
    resid = rng.normal(size=(n, 20))
    yhat = rng.normal(20, 5, size=(n, 3))
    Y_hat_df, Y_df = frames_from_arrays(hier, Y, yhat, resid, np.ones((n, 3)))
    kw = dict(Y_df=Y_df, intervals="bootstrap", level=[80, 95], n_samples=300)
    a = reconcile(Y_hat_df, hier, {"s": MinTrace("mint_shrink")}, seed=7, **kw).forecasts
    b = reconcile(Y_hat_df, hier, {"s": MinTrace("mint_shrink")}, seed=7, **kw).forecasts
    c = reconcile(Y_hat_df, hier, {"s": MinTrace("mint_shrink")}, seed=8, **kw).forecasts
    pd.testing.assert_frame_equal(a, b)
    low, _ = frames_from_arrays(hier, Y, yhat - 19, resid, np.ones((n, 3)))  # near zero
    nn = reconcile(low, hier, {"s": MinTrace("mint_shrink", nonnegative=True)}, seed=7, **kw)
    assert nn.diagnostics["negatives_before"].iloc[0] > 0  # the clipping path is exercised
    nn = nn.forecasts
    nn = nn[nn.method == "s"]
    assert (nn.yhat >= 0).all() and (nn.yhat_lo_95 >= 0).all()
    assert ((nn.yhat_lo_80 <= nn.yhat) & (nn.yhat <= nn.yhat_hi_80)).all()
    s = a[a.method == "s"]
    assert not np.allclose(s["yhat_lo_80"], c[c.method == "s"]["yhat_lo_80"])
    assert (s.yhat_lo_95 <= s.yhat_lo_80).all() and (s.yhat_hi_80 <= s.yhat_hi_95).all()


def test_nonnegative_point_forecasts_vs_nnls_and_clipping():
    """Iterative set-to-zero inside the projection: never worse than clipping the MinTrace
    bottoms, and usually the exact non-negative least-squares optimum (scipy's NNLS)."""
    from scipy.optimize import nnls

    from htsforecast.reconciliation._kernel import mint_bottom_nonnegative

    exact, cases = 0, 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        hier = Hierarchy.from_formula("(a / b) * c")
        hier.aggregate(random_grouped(rng, 3, 3))
        S = hier.S
        n = S.shape[0]
        y = rng.normal(5, 10, size=(n, 1))
        W = LowRankW(np.ones(n))
        b0 = mint_bottom(ConstraintSolver(S, W), y)
        if (b0 >= 0).all():
            continue
        cases += 1
        b = mint_bottom_nonnegative(S, W, y, b0)
        assert (b >= 0).all()

        def loss(x: np.ndarray, y=y, S=S) -> float:
            return float(((y - S @ x) ** 2).sum())

        assert loss(b) <= loss(np.maximum(b0, 0)) + 1e-9
        ref, _ = nnls(S.toarray(), y[:, 0])
        assert loss(b) >= loss(ref[:, None]) - 1e-9
        exact += loss(b) <= loss(ref[:, None]) * (1 + 1e-9) + 1e-12
    assert cases >= 20
    assert exact >= 0.6 * cases
