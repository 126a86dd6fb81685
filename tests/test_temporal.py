"""Temporal and cross-temporal reconciliation: dense closed forms, NNLS, coherence, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import nnls

from htsforecast import DataError, Hierarchy, HierarchyError, ReconciliationError
from htsforecast.models import SeasonalNaive
from htsforecast.temporal import (
    TemporalForecasts,
    TemporalHierarchy,
    forecast_temporal,
    reconcile_cross_temporal,
    reconcile_temporal,
)

RIDGE = 2e-8


# ----------------------------------------------------------------------------- fixtures
def small_case(seed: int = 0, years: int = 12, scale: float = 1.0, level_bias: float = 0.0):
    """Grouped 2 x 2 hierarchy, quarterly (k = 4, 2, 1), random base forecasts and residuals."""
    rng = np.random.default_rng(seed)
    hier = Hierarchy.from_formula("a * b")
    T = 4 * years + 1  # one extra leading quarter: dropped by the end alignment
    dates = pd.date_range("2000-01-01", periods=T, freq="QS")
    rows = [
        {"a": a, "b": b, "ds": d, "y": 10 + rng.gamma(2.0)}
        for a in "xy"
        for b in "uv"
        for d in dates
    ]
    Y = hier.aggregate(pd.DataFrame(rows), freq="QS")
    th = TemporalHierarchy("QS")
    ins = th.aggregate(Y).assign(model="m")
    ins["resid"] = rng.standard_normal(len(ins)) * ins["temporal_level"] ** 0.5
    ins["fitted"] = ins["y"] - ins["resid"]
    future = Y.groupby("unique_id").tail(8).copy()
    future["ds"] = future["ds"] + pd.DateOffset(months=24)
    fc = th.aggregate(future).assign(model="m")
    noise = rng.standard_normal(len(fc)) * fc["temporal_level"]
    fc["yhat"] = scale * fc["y"] + noise + level_bias * fc["temporal_level"]
    base = TemporalForecasts(fc.drop(columns="y"), ins, th, 8, pd.DataFrame())
    return hier, th, base


def arrays(base, ids, col, frame):
    """(n, n_t, P) array of ``frame[col]`` built directly from the frame (test-side)."""
    th = base.hierarchy
    out = []
    for uid in ids:
        per = []
        for k in th.factors:
            v = frame[(frame.unique_id == uid) & (frame.temporal_level == k)].sort_values("ds")
            per.append(v[col].to_numpy().reshape(-1, th.m // k).T)
        out.append(np.vstack(per))
    return np.stack(out)


def shrink_dense(E: np.ndarray) -> np.ndarray:
    """Schäfer–Strimmer shrinkage towards the diagonal, pairwise textbook formula (n x T)."""
    n, T = E.shape
    Xc = E - E.mean(axis=1, keepdims=True)
    S = Xc @ Xc.T / (T - 1)
    Z = Xc / np.sqrt(np.diag(S))[:, None]
    R = Z @ Z.T / (T - 1)
    num = den = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                w = Z[i] * Z[j]
                num += T / (T - 1) ** 3 * np.sum((w - w.mean()) ** 2)
                den += R[i, j] ** 2
    lam = min(max(num / den, 0.0), 1.0)
    return lam * np.diag(np.diag(S)) + (1 - lam) * S


def gls(S: np.ndarray, W: np.ndarray, y: np.ndarray) -> np.ndarray:
    Wi = np.linalg.inv(W)
    return S @ np.linalg.solve(S.T @ Wi @ S, S.T @ Wi @ y)


def te_W(method: str, th: TemporalHierarchy, R: np.ndarray) -> np.ndarray:
    """Dense temporal W of one series from its residuals R (n_t, N)."""
    k = th.node_level
    if method == "ols":
        return np.eye(len(k))
    if method == "struc":
        return np.diag(k.astype(float))
    if method == "wlsv":
        return np.diag([np.mean(R[k == kk] ** 2) + RIDGE for kk in k])
    if method == "wlsh":
        return np.diag(np.mean(R**2, axis=1) + RIDGE)
    if method == "shr":
        return shrink_dense(R)
    if method == "sam":
        return np.cov(R)
    raise AssertionError(method)


def out_array(rec, base, ids, method):
    fc = rec.forecasts[rec.forecasts.method == method]
    return arrays(base, ids, "yhat", fc)


# ----------------------------------------------------------------------------- structure
def test_temporal_hierarchy_structure_and_aggregation():
    th = TemporalHierarchy("MS")
    assert th.factors == (12, 6, 4, 3, 2, 1)
    assert th.S.shape == (28, 12)
    np.testing.assert_array_equal(th.S.toarray()[0], np.ones(12))
    np.testing.assert_array_equal(th.S.toarray()[1], [1] * 6 + [0] * 6)
    np.testing.assert_array_equal(th.S.toarray()[-12:], np.eye(12))
    assert TemporalHierarchy("QS").factors == (4, 2, 1)
    assert TemporalHierarchy("MS", [12, 4]).factors == (12, 4, 1)
    assert th.level_freq(3) == "3MS" and th.season_of(3) == 4 and th.season_of(12) == 1
    # 14 months: the first 2 (incomplete leading year) are dropped, blocks end-aligned
    Y = pd.DataFrame(
        {"unique_id": "s", "ds": pd.date_range("2000-11-01", periods=14, freq="MS"),
         "y": np.arange(14.0)}
    )  # fmt: skip
    agg = th.aggregate(Y)
    year = agg[agg.temporal_level == 12]
    assert list(year.ds) == [pd.Timestamp("2001-01-01")] and year.y.item() == sum(range(2, 14))
    q = agg[agg.temporal_level == 3]
    assert list(q.y) == [2 + 3 + 4, 5 + 6 + 7, 8 + 9 + 10, 11 + 12 + 13]
    assert len(agg[agg.temporal_level == 1]) == 12


def test_structure_errors():
    with pytest.raises(HierarchyError, match="divide the largest"):
        TemporalHierarchy("MS", [12, 5])
    with pytest.raises(HierarchyError, match="no seasonal period"):
        TemporalHierarchy("2MS")
    short = pd.DataFrame(
        {"unique_id": "s", "ds": pd.date_range("2000-01-01", periods=5, freq="MS"), "y": 1.0}
    )
    with pytest.raises(DataError, match="shorter than one top-level period"):
        TemporalHierarchy("MS").aggregate(short)


# ----------------------------------------------------------------------------- temporal: closed forms
@pytest.mark.parametrize("method", ["bu", "ols", "struc", "wlsv", "wlsh", "shr", "sam"])
def test_temporal_methods_equal_dense_closed_form(method):
    hier, th, base = small_case(seed=1)
    ids = list(hier.node_ids)
    rec = reconcile_temporal(base, [method])
    got = out_array(rec, base, ids, method)
    F = arrays(base, ids, "yhat", base.forecasts)
    R = arrays(base, ids, "resid", base.insample)
    S = th.S.toarray()
    for i in range(len(ids)):
        if method == "bu":
            want = S @ F[i, -4:]
        else:
            want = gls(S, te_W(method, th, R[i]), F[i])
        np.testing.assert_allclose(got[i], want, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(S @ got[i, -4:], got[i], atol=1e-10)  # coherent
    assert rec.diagnostics.max_temporal_violation.max() < 1e-10


def test_temporal_coherent_input_unchanged_and_base_kept():
    hier, th, base = small_case(seed=2)
    fc = base.forecasts.copy()
    bottoms = fc[fc.temporal_level == 1].copy()
    coherent = th.aggregate(bottoms.rename(columns={"yhat": "y"})[["unique_id", "ds", "y"]])
    rec = reconcile_temporal(
        TemporalForecasts(coherent.rename(columns={"y": "yhat"}).assign(model="m"),
                          base.insample, th, 8, pd.DataFrame()),
        ["ols", "struc", "wlsv", "shr"],
    )  # fmt: skip
    base_rows = rec.forecasts[rec.forecasts.method == "base"].yhat.to_numpy()
    for method in ["ols", "struc", "wlsv", "shr"]:
        got = rec.forecasts[rec.forecasts.method == method].yhat.to_numpy()
        np.testing.assert_allclose(got, base_rows, rtol=1e-10)


# ----------------------------------------------------------------------------- cross-temporal: closed forms
def ct_dense(method, hier, th, base, ids):
    """Dense closed form on the (series-major) Kronecker S with a dense W from its definition."""
    Scs, Ste = hier.S.toarray(), th.S.toarray()
    S = np.kron(Scs, Ste)
    F = arrays(base, ids, "yhat", base.forecasts)
    R = arrays(base, ids, "resid", base.insample)
    n, nt, P = F.shape
    k = th.node_level
    if method == "bu":
        B = F[-Scs.shape[1] :, -Ste.shape[1] :]
        return np.stack([Scs @ B[:, :, p] @ Ste.T for p in range(P)], axis=2)
    if method == "ols":
        W = np.eye(n * nt)
    elif method == "struc":
        W = np.diag(S.sum(axis=1))
    elif method == "wlsv":
        W = np.diag([np.mean(R[i, k == k[j]] ** 2) + RIDGE for i in range(n) for j in range(nt)])
    elif method == "wlsh":
        W = np.diag(np.mean(R**2, axis=2).ravel() + RIDGE)
    elif method == "bdshr":
        W = np.zeros((n * nt, n * nt))
        for kk in th.factors:
            Ek = R[:, k == kk, :].transpose(0, 2, 1).reshape(n, -1)
            Sig = shrink_dense(Ek)
            for j in np.flatnonzero(k == kk):
                W[j::nt, j::nt] = Sig
    Y = F.reshape(n * nt, P)
    return gls(S, W, Y).reshape(n, nt, P)


@pytest.mark.parametrize("method", ["bu", "ols", "struc", "wlsv", "wlsh", "bdshr"])
def test_cross_temporal_methods_equal_dense_closed_form(method):
    hier, th, base = small_case(seed=3)
    ids = list(hier.node_ids)
    rec = reconcile_cross_temporal(base, hier, [method])
    got = out_array(rec, base, ids, method)
    want = ct_dense(method, hier, th, base, ids)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    d = rec.diagnostics.iloc[0]
    assert d.max_temporal_violation < 1e-10 and d.max_cross_sectional_violation < 1e-10


def test_tcs_equals_its_definition():
    hier, th, base = small_case(seed=4)
    ids = list(hier.node_ids)
    rec = reconcile_cross_temporal(base, hier, ["tcs"], tcs=("struc", "mint_shrink"))
    got = out_array(rec, base, ids, "tcs")
    F = arrays(base, ids, "yhat", base.forecasts)
    R = arrays(base, ids, "resid", base.insample)
    Scs, Ste = hier.S.toarray(), th.S.toarray()
    Ft = np.stack([gls(Ste, te_W("struc", th, R[i]), F[i]) for i in range(len(ids))])
    Ps = []
    for kk in th.factors:
        Ek = R[:, th.node_level == kk, :].transpose(0, 2, 1).reshape(len(ids), -1)
        Wi = np.linalg.inv(shrink_dense(Ek))
        Ps.append(np.linalg.solve(Scs.T @ Wi @ Scs, Scs.T @ Wi))
    want = np.einsum("ib,bjp->ijp", Scs @ np.mean(Ps, axis=0), Ft)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)
    d = rec.diagnostics.iloc[0]
    assert d.max_temporal_violation < 1e-10 and d.max_cross_sectional_violation < 1e-10


def test_cross_temporal_ols_is_sequential_ols():
    """OLS on S_cs ⊗ S_te equals OLS across the hierarchy, then OLS across time (Kronecker)."""
    hier, th, base = small_case(seed=5)
    ids = list(hier.node_ids)
    rec = reconcile_cross_temporal(base, hier, ["ols"])
    F = arrays(base, ids, "yhat", base.forecasts)
    Scs, Ste = hier.S.toarray(), th.S.toarray()
    Mcs = Scs @ np.linalg.pinv(Scs)
    Mte = Ste @ np.linalg.pinv(Ste)
    want = np.einsum("ab,bjp,kj->akp", Mcs, F, Mte)
    np.testing.assert_allclose(out_array(rec, base, ids, "ols"), want, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- non-negative = NNLS
def nnls_dense(S: np.ndarray, W: np.ndarray, y: np.ndarray) -> np.ndarray:
    L = np.linalg.cholesky(np.linalg.inv(W))  # W^-1 = L L'
    b, _ = nnls(L.T @ S, L.T @ y, maxiter=10_000)
    return S @ b


@pytest.mark.parametrize("method", ["struc", "wlsv", "shr"])
def test_temporal_nonnegative_equals_nnls(method):
    hier, th, base = small_case(seed=6, scale=0.05, level_bias=-0.3)
    ids = list(hier.node_ids)
    rec = reconcile_temporal(base, [method], nonnegative=True)
    got = out_array(rec, base, ids, method)
    F = arrays(base, ids, "yhat", base.forecasts)
    R = arrays(base, ids, "resid", base.insample)
    S = th.S.toarray()
    assert (F < 0).any() and (got >= 0).all()
    n_bound = 0
    for i in range(len(ids)):
        W = te_W(method, th, R[i])
        for p in range(F.shape[2]):
            want = nnls_dense(S, W, F[i, :, p])
            n_bound += int((np.abs(want[-4:]) < 1e-12).sum())
            np.testing.assert_allclose(got[i, :, p], want, rtol=1e-7, atol=1e-8)
    assert n_bound > 0  # the constraint binds somewhere


@pytest.mark.parametrize("method", ["ols", "wlsv", "bdshr"])
def test_cross_temporal_nonnegative_equals_nnls(method):
    hier, th, base = small_case(seed=7, scale=0.05, level_bias=-0.2)
    ids = list(hier.node_ids)
    rec = reconcile_cross_temporal(base, hier, [method], nonnegative=True)
    got = out_array(rec, base, ids, method)
    F = arrays(base, ids, "yhat", base.forecasts)
    assert (F < 0).any() and (got >= -1e-12).all()
    Scs, Ste = hier.S.toarray(), th.S.toarray()
    S = np.kron(Scs, Ste)
    # W from the unconstrained dense closed form's definition: recover it via ct_dense's W
    R = arrays(base, ids, "resid", base.insample)
    n, nt, P = F.shape
    k = th.node_level
    if method == "ols":
        W = np.eye(n * nt)
    elif method == "wlsv":
        W = np.diag([np.mean(R[i, k == k[j]] ** 2) + RIDGE for i in range(n) for j in range(nt)])
    else:
        W = np.zeros((n * nt, n * nt))
        for kk in th.factors:
            Sig = shrink_dense(R[:, k == kk, :].transpose(0, 2, 1).reshape(n, -1))
            for j in np.flatnonzero(k == kk):
                W[j::nt, j::nt] = Sig
    for p in range(P):
        want = nnls_dense(S, W, F[:, :, p].ravel()).reshape(n, nt)
        np.testing.assert_allclose(got[:, :, p], want, rtol=1e-7, atol=1e-7)
    d = rec.diagnostics.iloc[0]
    assert d.max_temporal_violation < 1e-10 and d.max_cross_sectional_violation < 1e-10


# ----------------------------------------------------------------------------- base forecasts
def test_forecast_temporal_levels_freq_season_and_horizon():
    hier, th, base = small_case(seed=8)
    Y1 = base.insample.query("temporal_level == 1")[["unique_id", "ds", "y"]]
    seen = []

    def model(season: int):  # a factory receives each level's season length
        seen.append(season)
        return SeasonalNaive(season)

    fb = forecast_temporal(Y1, th, {"snaive": model}, h=5)  # 5 quarters -> 2 years
    assert sorted(seen) == [1, 2, 4] and fb.h == 8
    counts = fb.forecasts.groupby("temporal_level").size().to_dict()
    n = hier.n_nodes
    assert counts == {4: 2 * n, 2: 4 * n, 1: 8 * n}
    # seasonal naive at k=1 repeats the last year; at k=4 (season 1) the last annual value
    last = Y1[Y1.unique_id == "total"].tail(4).y.to_numpy()
    got = fb.forecasts.query("unique_id == 'total' and temporal_level == 1").yhat.to_numpy()
    np.testing.assert_allclose(got, np.tile(last, 2))
    annual = fb.forecasts.query("unique_id == 'total' and temporal_level == 4").yhat.to_numpy()
    np.testing.assert_allclose(annual, [last.sum()] * 2)
    dates = fb.forecasts.query("unique_id == 'total' and temporal_level == 2").ds
    assert (dates.diff().dropna().dt.days > 150).all()  # 2-quarter steps


def test_forecast_temporal_with_statsforecast_ets_per_level():
    from statsforecast.models import AutoETS

    from htsforecast.models import StatsForecastModel
    from htsforecast.temporal import season_model

    ets = StatsForecastModel(AutoETS(season_length=4, model="ZZA"))
    annual = season_model(ets, 1)
    assert annual.model.season_length == 1 and annual.model.model == "ZZN"
    assert ets.model.season_length == 4  # the user's model is not modified
    hier, th, base = small_case(seed=9, years=8)
    Y1 = base.insample.query("temporal_level == 1")[["unique_id", "ds", "y"]].iloc[:64]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fb = forecast_temporal(Y1, th, {"ets": ets}, h=4)
    assert fb.forecasts.yhat.notna().all() and len(fb.insample) > 0
    rec = reconcile_temporal(fb, ["struc", "wlsv", "shr"])
    assert rec.diagnostics.max_temporal_violation.max() < 1e-10


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_problem():
    hier, th, base = small_case(seed=10)
    with pytest.raises(ReconciliationError, match="unknown temporal method"):
        reconcile_temporal(base, ["mint"])
    with pytest.raises(ReconciliationError, match="unknown cross-temporal method"):
        reconcile_cross_temporal(base, hier, ["shr"])
    no_res = TemporalForecasts(base.forecasts, None, th, 8, pd.DataFrame())
    with pytest.raises(ReconciliationError, match="needs in-sample residuals"):
        reconcile_temporal(no_res, ["wlsv"])
    with pytest.raises(ReconciliationError, match="not available for 'tcs'"):
        reconcile_cross_temporal(base, hier, ["tcs"], nonnegative=True)
    missing = base.forecasts[~((base.forecasts.unique_id == "total")
                               & (base.forecasts.temporal_level == 2))]  # fmt: skip
    with pytest.raises(DataError, match="total"):
        reconcile_temporal(TemporalForecasts(missing, None, th, 8, pd.DataFrame()), ["ols"])
    shifted = base.forecasts.copy()
    shifted.loc[shifted.unique_id == "a=x", "ds"] += pd.DateOffset(months=3)
    with pytest.raises(DataError, match="same dates"):
        reconcile_cross_temporal(TemporalForecasts(shifted, None, th, 8, pd.DataFrame()), hier)
    with pytest.raises(DataError, match="h must be a positive integer"):
        forecast_temporal(pd.DataFrame(), th, {}, h=0)


def test_accuracy_table_matches_metrics_and_tags_methods():
    from htsforecast.metrics import mase, rmse
    from htsforecast.temporal import accuracy_table, tag_methods

    hier, th, base = small_case(seed=11)
    te = reconcile_temporal(base, ["struc"])
    ct = reconcile_cross_temporal(base, hier, ["struc"])
    both = tag_methods(("te_", te), ("ct_", ct))
    assert sorted(both.forecasts.method.unique()) == ["base", "ct_struc", "te_struc"]
    assert len(both.forecasts) == 3 * len(base.forecasts)
    actual = base.forecasts.rename(columns={"yhat": "y"}).assign(y=lambda d: d.y + 1.0)
    tab = accuracy_table(both, actual, base, hier)
    one = lambda d, **kw: d.loc[np.logical_and.reduce([d[k] == v for k, v in kw.items()])]  # noqa: E731
    got = one(tab, level="total", temporal_level=2, method="ct_struc", metric="mase").value.item()
    fc = one(ct.forecasts, unique_id="total", temporal_level=2, method="struc").sort_values("ds")
    y = one(actual, unique_id="total", temporal_level=2).sort_values("ds").y.to_numpy()
    train = one(base.insample, unique_id="total", temporal_level=2).sort_values("ds").y.to_numpy()
    assert got == pytest.approx(mase(y, fc.yhat.to_numpy(), train, m=2), rel=1e-12)
    base_rmse = one(tab, level="all", temporal_level=4, method="base", metric="rmse").value.item()
    assert base_rmse == pytest.approx(1.0)  # every base forecast is off by exactly 1
    assert rmse(y, y - 1.0) == pytest.approx(1.0)


def test_cli_run_temporal_writes_levels_and_accuracy(tmp_path, capsys):
    from htsforecast.cli import main

    rng = np.random.default_rng(12)
    dates = pd.date_range("2000-01-01", periods=4 * 8 + 2, freq="QS")
    rows = [{"a": a, "b": b, "ds": d, "y": 10 + rng.gamma(2.0)} for a in "xy" for b in "uv"
            for d in dates]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "out"
    args = ["run", "--data", str(tmp_path / "d.csv"), "--formula", "a * b", "--freq", "QS",
            "--models", "snaive", "--h", "3", "--temporal", "auto", "--out", str(out),
            "--n-jobs", "1", "--no-plots"]  # fmt: skip
    assert main(args) == 0
    fc = pd.read_csv(out / "forecasts.csv")
    acc = pd.read_csv(out / "accuracy.csv")
    assert sorted(fc.temporal_level.unique()) == [1, 2, 4]
    assert {"base", "te_wlsv", "ct_bdshr", "ct_tcs"} <= set(fc.method)
    assert len(fc[(fc.method == "base") & (fc.temporal_level == 1)]) == 9 * 4  # h=3 -> 1 year
    assert {"total", "a", "b", "a/b", "all"} == set(acc.level)
    assert {"mae", "rmse", "mase"} == set(acc.metric)
    assert "by temporal level" in capsys.readouterr().out
    assert main(args[:-7] + ["--temporal", "12,5", "--out", str(out), "--no-plots"]) == 2
    assert "divide the largest" in capsys.readouterr().err
