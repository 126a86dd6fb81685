"""Tests of the PartialPooling forecaster: parent choice, the empirical-Bayes kernels against
independent computations, closed forms (a child that is an exact share of its parent), the
shrinkage property, the protocol (forecasts, fitted values, intervals, reconciliation) and the
CLI name. The radon CV comparison with AutoETS is in ``benchmarks/pooled_radon.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from htsforecast import Hierarchy, forecast, reconcile
from htsforecast.models import Mean, PartialPooling, SeasonalNaive
from htsforecast.models._execution import LocalExecutor
from htsforecast.models._pooled import gamma_shape, pooling_plan, shrink_counts, shrink_normal
from htsforecast.models._protocol import Panel
from htsforecast.reconciliation import BottomUp, MinTrace

MONTHS = pd.date_range("2015-01-01", periods=72, freq="MS")


def _shops(seed: int = 0, scale: float = 1.0) -> pd.DataFrame:
    """Sparse monthly counts of 2 regions x 6 shops: each shop a Poisson share of a seasonal
    regional rate (the radon panel's structure in miniature)."""
    rng = np.random.default_rng(seed)
    season = 1 + 0.5 * np.cos(2 * np.pi * np.arange(72) / 12)
    rows = []
    for r, region in enumerate(["east", "west"]):
        for s in range(6):
            rate = scale * (0.2 + 0.3 * s) * (1 + 0.3 * r) * season
            rows.append(pd.DataFrame({"region": region, "shop": f"{region[0]}{s}", "ds": MONTHS,
                                      "y": rng.poisson(rate).astype(float)}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def shops():
    hier = Hierarchy.from_formula("region / shop")
    return hier, hier.aggregate(_shops())


def _panel(Y: pd.DataFrame, hier: Hierarchy) -> Panel:
    order = {u: k for k, u in enumerate(hier.node_ids)}
    Y = Y.assign(_o=Y["unique_id"].map(order)).sort_values(["_o", "ds"]).drop(columns="_o")
    return Panel.from_long(Y.reset_index(drop=True), "MS")


# ---------------------------------------------------------------------- who pools toward whom


def test_pooling_plan_nested_and_grouped():
    ids = ["total", "state=A", "state=B", "state=A/county=x", "state=B/county=y",
           "floor=0", "floor=1", "state=A/floor=0", "state=A/floor=1", "state=B/floor=0",
           "state=A/county=x/floor=0", "state=A/county=x/floor=1", "state=B/county=y/floor=0"]  # fmt: skip
    # volumes: make state x floor bigger than the county for x/floor=0, smaller for x/floor=1
    vol = {"state=A/county=x": 5.0, "state=A/floor=0": 9.0, "state=A/floor=1": 1.0}
    y = np.array([vol.get(i, 1.0) for i in ids])
    panel = Panel(np.array(ids, dtype=object), np.arange(len(ids) + 1), np.zeros(len(ids),
                  "datetime64[ns]"), y, "MS")  # fmt: skip
    leaves, parents = pooling_plan(panel)
    got = {ids[c]: ids[p] for c, p in zip(leaves, parents)}
    assert got == {
        "state=A/county=x/floor=0": "state=A/floor=0",  # larger of county (5) and state x floor (9)
        "state=A/county=x/floor=1": "state=A/county=x",  # county (5) beats state x floor (1)
        "state=B/county=y/floor=0": "state=B/county=y",  # tie (1 = 1): the later position loses
    }


def test_pooling_plan_without_key_value_ids_pools_nothing():
    panel = Panel(np.array(["a", "b"], dtype=object), np.array([0, 1, 2]),
                  np.zeros(2, "datetime64[ns]"), np.ones(2), "MS")  # fmt: skip
    leaves, parents = pooling_plan(panel)
    assert len(leaves) == 0 and len(parents) == 0


# ---------------------------------------------------------------------- empirical Bayes kernels


def test_gamma_shape_is_the_negative_binomial_ml_estimate():
    """Against scipy's NB log-pmf maximised independently (Y ~ NB(a, a / (a + E)))."""
    rng = np.random.default_rng(1)
    E = rng.uniform(0.5, 20, 400)
    Y = rng.poisson(E * rng.gamma(3.0, 1 / 3.0, 400)).astype(float)
    a = gamma_shape(Y, E)

    def nll(log_a):
        b = np.exp(log_a)
        return -stats.nbinom.logpmf(Y, b, b / (b + E)).sum()

    ref = np.exp(optimize.minimize_scalar(nll, bounds=(-5, 10), method="bounded").x)
    assert a == pytest.approx(ref, rel=1e-3)
    assert 1.5 < a < 6  # the true shape is 3
    f = shrink_counts(Y, E)
    np.testing.assert_allclose(f, (a + Y) / (a + E), rtol=1e-12)


def test_no_extra_poisson_variation_pools_completely():
    rng = np.random.default_rng(2)
    E = rng.uniform(1, 5, 300)
    Y = rng.poisson(E).astype(float)  # exactly Poisson: the factors are all 1
    assert gamma_shape(Y, E) > 50
    assert np.abs(shrink_counts(Y, E) - 1).max() < 0.05


def test_shrink_normal_hand_worked():
    Y, E, var = np.array([12.0, 8.0, 10.0, 14.0]), np.full(4, 10.0), np.full(4, 1.0)
    r = Y / E  # 1.2 0.8 1.0 1.4; v = 0.01; t2 = var(r) - 0.01
    t2 = np.var(r, ddof=1) - 0.01
    np.testing.assert_allclose(shrink_normal(Y, E, var), 1 + t2 / (t2 + 0.01) * (r - 1))
    # noise larger than the spread: everything pooled to 1
    np.testing.assert_allclose(shrink_normal(Y, E, np.full(4, 100.0)), 1.0)


# ---------------------------------------------------------------------- closed forms, properties


def _two_children(share: float) -> Panel:
    parent = np.tile([8.0, 4.0, 12.0, 16.0], 12)  # 48 quarters
    ds = pd.date_range("2000-01-01", periods=48, freq="QS")
    Y = pd.concat(
        [pd.DataFrame({"unique_id": u, "ds": ds, "y": v}) for u, v in
         [("total", parent), ("k=a", share * parent), ("k=b", (1 - share) * parent)]]
    )  # fmt: skip
    return Panel.from_long(Y, "QS")


def test_equal_share_children_get_their_share_of_the_parent_forecast():
    """Children that are exactly half the parent at every date: every factor is exactly 1, so
    forecasts and fitted values are half the parent's (a closed form)."""
    panel = _two_children(0.5)
    top = SeasonalNaive(4)
    out = PartialPooling(4, top=top).fit_predict(panel, 6, (80,), LocalExecutor(1))
    ref = top.fit_predict(panel.subset([0]), 6, (80,), LocalExecutor(1))
    np.testing.assert_allclose(out.mean[0], ref.mean[0])
    for k in (1, 2):
        np.testing.assert_allclose(out.mean[k], ref.mean[0] / 2, rtol=1e-12)
        np.testing.assert_allclose(out.fitted[48 * k : 48 * (k + 1)], ref.fitted / 2, rtol=1e-12)
    assert not out.failures


def test_unequal_shares_are_shrunk_toward_the_sibling_average():
    """Shares 1/4 and 3/4: the forecast shares move toward 1/2, a little (48 quarters of data),
    and stay coherent (they still add up to the parent)."""
    panel = _two_children(0.25)
    out = PartialPooling(4, top=SeasonalNaive(4)).fit_predict(panel, 6, (), LocalExecutor(1))
    share = out.mean[1] / out.mean[0]
    assert (share > 0.25).all() and (share < 0.25 * 1.05).all()
    np.testing.assert_allclose(out.mean[1] + out.mean[2], out.mean[0], rtol=1e-3)


def test_sparse_child_keeps_parent_profile_rich_child_keeps_its_own():
    """Seasonal deviation shrinkage: a shop with a handful of counts follows the parent's
    profile; a shop with many counts and its own (opposite) profile keeps it."""
    rng = np.random.default_rng(5)
    t = np.arange(72)
    season, own = 1 + 0.6 * np.cos(2 * np.pi * t / 12), 1 - 0.6 * np.cos(2 * np.pi * t / 12)
    frames = [(f"s{k}", rng.poisson(season)) for k in range(60)]
    frames += [("big", rng.poisson(20 * own)), ("tiny", rng.poisson(0.05 * own))]
    df = pd.concat([pd.DataFrame({"shop": s, "ds": MONTHS, "y": y.astype(float)})
                    for s, y in frames])  # fmt: skip
    hier = Hierarchy.from_formula("shop")
    out = PartialPooling(12, top=SeasonalNaive(12)).fit_predict(
        _panel(hier.aggregate(df), hier), 12, (), LocalExecutor(1)
    )
    idx = {u: k for k, u in enumerate(hier.node_ids)}
    share = {u: out.mean[idx[f"shop={u}"]] / out.mean[idx["total"]] for u in ("big", "tiny")}
    total = 60 * season[:12] + 20 * own[:12]  # expected parent over a year (the future repeats)
    assert np.corrcoef(share["big"], 20 * own[:12] / total)[0, 1] > 0.95
    true_tiny = 0.05 * own[:12] / total
    assert np.ptp(share["tiny"]) / share["tiny"].mean() < 0.5 * np.ptp(true_tiny) / true_tiny.mean()


def test_every_node_forecast_intervals_and_fitted(shops):
    hier, Y = shops
    base = forecast(Y, {"pooled": PartialPooling(12, top=SeasonalNaive(12))}, h=12,
                    freq="MS", level=[80, 95])  # fmt: skip
    fc = base.forecasts
    assert fc["yhat"].notna().all() and base.fallbacks.empty
    assert (fc["yhat_lo_95"] <= fc["yhat_lo_80"]).all() and (fc["yhat_lo_80"] <= fc["yhat"]).all()
    assert (fc["yhat"] <= fc["yhat_hi_80"]).all() and (fc["yhat_hi_80"] <= fc["yhat_hi_95"]).all()
    bottom = fc[fc["unique_id"].isin(hier.bottom_ids)]
    assert (bottom["yhat_lo_95"] >= 0).all()  # counts: negative binomial bounds
    for col in ("yhat_lo_80", "yhat_hi_80"):  # NB quantiles, or the point where they miss it
        assert ((bottom[col] % 1 == 0) | (bottom[col] == bottom["yhat"])).all()
    ins = base.insample[base.insample["unique_id"].isin(hier.bottom_ids)]
    assert ins["fitted"].iloc[12:].notna().mean() > 0.8  # parent's snaive fitted after a year
    rec = reconcile(base, hier, {"bu": BottomUp(), "mint": MinTrace("mint_shrink")})
    for method in ("bu", "mint"):
        r = rec.forecasts[rec.forecasts["method"] == method].pivot(
            index="unique_id", columns="ds", values="yhat"
        )
        S = hier.S.toarray()
        bot = r.loc[hier.bottom_ids].to_numpy()
        np.testing.assert_allclose(S @ bot, r.loc[hier.node_ids].to_numpy(), atol=1e-8)


def test_beats_per_node_baselines_on_sparse_bottom_series():
    """On the simulated shops (sparse Poisson shares of a seasonal rate), pooled bottom forecasts
    have a lower RMSE against the true rates than each shop's own mean or seasonal naive."""
    hier = Hierarchy.from_formula("region / shop")
    df = _shops(seed=3)
    Y = hier.aggregate(df[df["ds"] < MONTHS[60]])
    season = 1 + 0.5 * np.cos(2 * np.pi * np.arange(60, 72) / 12)
    truth = {f"region={r}/shop={r[0]}{s}": (0.2 + 0.3 * s) * (1 + 0.3 * k) * season
             for k, r in enumerate(["east", "west"]) for s in range(6)}  # fmt: skip
    models = {"pooled": PartialPooling(12, top=SeasonalNaive(12)), "mean": Mean(),
              "snaive": SeasonalNaive(12)}  # fmt: skip
    fc = forecast(Y, models, h=12, freq="MS").forecasts
    rmse = {}
    for name in models:
        part = fc[(fc["model"] == name) & fc["unique_id"].isin(list(truth))]
        err = [part.loc[part["unique_id"] == u, "yhat"].to_numpy() - t for u, t in truth.items()]
        rmse[name] = float(np.sqrt(np.mean(np.square(err))))
    assert rmse["pooled"] < rmse["mean"] and rmse["pooled"] < rmse["snaive"], rmse


def test_median_point_forecast_is_the_predictive_median(shops):
    hier, Y = shops
    panel = _panel(Y, hier)
    ex = LocalExecutor(1)
    mean = PartialPooling(12, top=SeasonalNaive(12)).fit_predict(panel, 12, (50,), ex)
    med = PartialPooling(12, top=SeasonalNaive(12), point="median").fit_predict(panel, 12, (), ex)
    leaves, _ = pooling_plan(panel)
    # the 50% interval's bounds straddle the median; medians of counts are integers
    assert np.allclose(med.mean[leaves] % 1, 0)
    assert (med.mean[leaves] >= mean.lo[50][leaves]).all()
    assert (med.mean[leaves] <= mean.hi[50][leaves]).all()
    others = np.setdiff1d(np.arange(panel.n_series), leaves)
    np.testing.assert_allclose(med.mean[others], mean.mean[others])


def test_continuous_series_use_normal_shrinkage():
    rng = np.random.default_rng(7)
    df = pd.concat([pd.DataFrame({"shop": f"s{k}", "ds": MONTHS,
                                  "y": 10 + k + rng.normal(0, 1, 72)}) for k in range(5)])  # fmt: skip
    hier = Hierarchy.from_formula("shop")
    base = forecast(hier.aggregate(df), {"p": PartialPooling(12, top=Mean())}, h=6, freq="MS",
                    level=[80])  # fmt: skip
    fc = base.forecasts.set_index("unique_id")
    assert base.fallbacks.empty
    lvl = fc.loc["shop=s4", "yhat"].mean()
    assert 13 < lvl < 15  # its own level (14), not the average shop (12)
    width = (fc.loc["shop=s4", "yhat_hi_80"] - fc.loc["shop=s4", "yhat_lo_80"]).mean()
    assert 1.5 < width < 4  # about 2 * 1.28 * residual sd 1


def test_failed_parent_fails_its_children():
    ds = pd.date_range("2000-01-01", periods=8, freq="MS")
    Y = pd.concat([pd.DataFrame({"unique_id": u, "ds": ds, "y": v}) for u, v in
                   [("total", np.full(8, 4.0)), ("k=a", np.full(8, 1.0)),
                    ("k=b", np.full(8, 3.0))]])  # fmt: skip
    out = PartialPooling(12, top=SeasonalNaive(12)).fit_predict(
        Panel.from_long(Y, "MS"), 3, (), LocalExecutor(1)
    )  # 8 months is too short for the top model's seasonal naive
    assert set(out.failures) == {0, 1, 2}
    assert out.failures[1] == "parent total has no forecast"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"season_length": 0}, "season_length must be >= 1"),
        ({"kind": "poisson"}, "kind must be 'auto', 'count' or 'continuous'"),
        ({"point": "mode"}, "point must be 'mean' or 'median'"),
        ({"half_life": 0}, "half_life must be positive"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PartialPooling(**{"season_length": 12, **kwargs})


def test_cli_name():
    from htsforecast.job import MODELS, make_models

    assert "pooled" in MODELS
    models = make_models(("pooled", "pooled_median"), 12)
    model = models["pooled"]
    assert isinstance(model, PartialPooling) and model.season_length == 12
    assert model.point == "mean"  # the default: means add up under reconciliation
    assert models["pooled_median"].point == "median"
