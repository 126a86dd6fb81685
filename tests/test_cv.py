"""Tests of htsforecast.cross_validate (htsforecast/_cv.py): windows, leakage, scores."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from htsforecast import CVResult, cross_validate, forecast_best, metrics, select_best
from htsforecast.errors import DataError
from htsforecast.hierarchy import Hierarchy
from htsforecast.models import Mean, Naive, SeasonalNaive
from htsforecast.reconciliation import BottomUp, MinTrace

N_DATES = 20


@pytest.fixture(scope="module")
def data(state_city) -> tuple[pd.DataFrame, Hierarchy, pd.DataFrame]:
    return state_city


@dataclass
class Recorder:
    """Naive forecaster that records the last training date and length it was given."""

    seen: list = field(default_factory=list)
    min_obs = 1

    def fit_predict(self, panel, h, level, executor):
        self.seen.append((pd.Timestamp(panel.ds.max()), len(panel.ds) // len(panel.ids)))
        return Naive().fit_predict(panel, h, level, executor)


def test_windows_never_see_test_dates(data) -> None:
    _, hier, Y = data
    rec = Recorder()
    res = cross_validate(
        Y, hier, {"rec": rec}, {"bu": BottomUp()}, h=4, n_windows=3, step_size=2, freq="QS"
    )
    dates = np.sort(Y["ds"].unique())
    # cutoffs at positions T-h-1-(n-1-k)*step = 11, 13, 15
    expected = [pd.Timestamp(dates[i]) for i in (11, 13, 15)]
    assert [s[0] for s in rec.seen] == expected
    assert [s[1] for s in rec.seen] == [12, 14, 16]  # expanding window
    fc = res.forecasts
    for cutoff, part in fc.groupby("cutoff"):
        assert part["ds"].min() > cutoff
        assert sorted(part["horizon"].unique()) == [1, 2, 3, 4]
    assert sorted(fc["cutoff"].unique()) == expected
    assert fc["y"].notna().all()


@pytest.mark.filterwarnings("ignore:.*residual periods:UserWarning")
def test_spike_after_cutoff_does_not_change_window_forecasts(data) -> None:
    _, hier, Y = data
    models = {"snaive": SeasonalNaive(4), "mean": Mean()}
    methods = {"ols": MinTrace("ols"), "shrink": MinTrace("mint_shrink")}
    kw = dict(h=4, n_windows=2, step_size=4, freq="QS")
    res = cross_validate(Y, hier, models, methods, **kw)
    first_cut = res.forecasts["cutoff"].min()
    spiked = Y.copy()
    spiked.loc[spiked["ds"] > first_cut, "y"] += 1e4  # huge change everywhere after the cutoff
    res2 = cross_validate(spiked, hier, models, methods, **kw)
    a = res.forecasts[res.forecasts["cutoff"] == first_cut].reset_index(drop=True)
    b = res2.forecasts[res2.forecasts["cutoff"] == first_cut].reset_index(drop=True)
    pd.testing.assert_series_equal(a["yhat"], b["yhat"])  # forecasts identical
    assert not np.allclose(a["y"], b["y"])  # while the actuals they are scored on moved
    last = res2.forecasts["cutoff"].max()
    moved = res2.forecasts[res2.forecasts["cutoff"] == last]["yhat"].to_numpy()
    same = res.forecasts[res.forecasts["cutoff"] == last]["yhat"].to_numpy()
    assert not np.allclose(moved, same)  # the later window does train on the changed data


def test_scores_match_hand_computation(data) -> None:
    _, hier, Y = data
    table = cross_validate(
        Y,
        hier,
        {"naive": Naive()},
        {"bu": BottomUp()},
        h=3,
        n_windows=2,
        step_size=3,
        freq="QS",
        metrics=("mae", "rmse", "mase"),
        season_length=4,
    ).table
    wide = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids].to_numpy()
    bottom = wide[-hier.n_bottom :]
    S = hier.S.toarray()
    scores = {("base", "mase"): [], ("bu", "mase"): [], ("base", "rmse"): []}
    for cut in (N_DATES - 3 - 1 - 3, N_DATES - 3 - 1):
        train, test = wide[:, : cut + 1], wide[:, cut + 1 : cut + 4]
        base = np.repeat(train[:, -1:], 3, axis=1)
        bu = S @ np.repeat(bottom[:, cut : cut + 1], 3, axis=1)
        scores[("base", "mase")].append(metrics.mase(test, base, train, m=4))
        scores[("bu", "mase")].append(metrics.mase(test, bu, train, m=4))
        scores[("base", "rmse")].append(metrics.rmse(test, base))
    for (method, metric), vals in scores.items():
        per_node = np.mean(vals, axis=0)  # mean over windows == mean of window means
        sel = (table["model"] == "naive") & (table["method"] == method)
        got = table[sel & (table["metric"] == metric)]
        got = got.set_index("level")["value"]
        assert got["all"] == pytest.approx(per_node.mean())
        assert got["total"] == pytest.approx(per_node[0])
        assert got["state/city"] == pytest.approx(per_node[-3:].mean())
    assert list(dict.fromkeys(table["level"])) == ["total", "state", "state/city", "all"]
    # Naive forecasts of the bottom series summed == BU; naive base of totals differs
    assert set(table["method"]) == {"base", "bu"}


def test_interval_metrics_and_detail(data) -> None:
    _, hier, Y = data
    res = cross_validate(
        Y,
        hier,
        {"naive": Naive()},
        {"ols": MinTrace("ols")},
        h=2,
        n_windows=3,
        freq="QS",
        level=[80, 95],
        metrics=("rmse", "mase", "coverage", "crps"),
        season_length=4,
    )
    assert isinstance(res, CVResult)
    assert set(res.table["metric"]) == {"rmse", "mase", "coverage_80", "coverage_95", "crps"}
    cov = res.table.query("metric.str.startswith('coverage')")["value"]
    assert ((cov >= 0) & (cov <= 1)).all()
    assert res.by_window["cutoff"].nunique() == 3
    hz = res.by_horizon
    assert sorted(hz["horizon"].unique()) == [1, 2]
    assert set(hz["metric"]) == {"rmse", "mase"}
    # horizon-1 RMSE of the total over 3 windows, by hand
    f = res.forecasts.query("unique_id == 'total' and horizon == 1 and method == 'base'")
    by_hand = np.sqrt(np.mean((f["y"] - f["yhat"]) ** 2))
    got = hz.query("level == 'total' and method == 'base' and metric == 'rmse' and horizon == 1")
    assert got["value"].item() == pytest.approx(by_hand)


def test_bad_arguments(data) -> None:
    _, hier, Y = data
    with pytest.raises(DataError, match="too few"):
        cross_validate(Y, hier, {"n": Naive()}, None, h=8, n_windows=5, freq="QS")
    with pytest.raises(DataError, match="unknown metric"):
        cross_validate(
            Y, hier, {"n": Naive()}, None, h=2, n_windows=1, freq="QS", metrics=("mape",)
        )
    with pytest.raises(DataError, match="level="):
        cross_validate(
            Y, hier, {"n": Naive()}, None, h=2, n_windows=1, freq="QS", metrics=("coverage",)
        )
    with pytest.raises(DataError, match="missing column"):
        cross_validate(Y.drop(columns="y"), hier, {"n": Naive()}, None, h=2, n_windows=1, freq="QS")


def test_public_names_and_one_result_type(data) -> None:
    from pathlib import Path

    import htsforecast

    assert htsforecast.cross_validate is cross_validate
    assert htsforecast.select_best is select_best and htsforecast.forecast_best is forecast_best
    # no module left for a top-level function ``htsforecast.evaluate`` to be shadowed by
    assert not (Path(htsforecast.__file__).parent / "evaluate.py").exists()
    _, hier, Y = data
    res = cross_validate(Y, hier, {"n": Naive()}, None, h=2, n_windows=1, freq="QS",
                         level=[95, 80, 80], metrics=("mae", "coverage"))  # fmt: skip
    assert isinstance(res, CVResult) and res.level == [80, 95]
    assert set(res.table["metric"]) == {"mae", "coverage_80", "coverage_95"}


def test_reconciled_carries_its_levels(data) -> None:
    from htsforecast import forecast, reconcile

    _, hier, Y = data
    base = forecast(Y, {"n": Naive()}, h=2, freq="QS", level=[95, 80])
    rec = reconcile(base, hier, {"bu": BottomUp()}, level=[80, 80, 95])
    assert rec.level == base.level == [80, 95]
    assert reconcile(base, hier, {"bu": BottomUp()}, level=[95]).level == [95]
    cols = reconcile(base, hier, {"bu": BottomUp()}, level=[95]).forecasts.columns
    assert "yhat_lo_80" not in cols and "yhat_lo_95" in cols


@dataclass
class NaiveWithSamples:
    """Naive forecasts with 5 fixed sample paths around them (last value + -2..2)."""

    n_samples: int = 5
    min_obs = 1

    def fit_predict(self, panel, h, level, executor):
        from dataclasses import replace

        out = Naive().fit_predict(panel, h, level, executor)
        paths = out.mean[:, :, None] + np.linspace(-2, 2, self.n_samples)
        return replace(out, samples=paths)


def test_sample_crps_scored_where_samples_exist(data) -> None:
    _, hier, Y = data
    with pytest.warns(RuntimeWarning, match="NaN"):  # bu under gaussian intervals: no samples
        res = cross_validate(Y, hier, {"s": NaiveWithSamples()}, {"bu": BottomUp()}, h=2,
                             n_windows=1, freq="QS", level=[80], metrics=("crps_sample",))  # fmt: skip
    got = res.table.set_index(["level", "method"])["value"]
    wide = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids].to_numpy()
    last, test = wide[:, -3], wide[:, -2:]
    paths = np.repeat(last[:, None], 2, axis=1)[:, :, None] + np.linspace(-2, 2, 5)
    by_hand = metrics.crps_sample(test, paths)  # per node, hand-built paths
    assert got[("all", "base")] == pytest.approx(by_hand.mean())
    assert got[("total", "base")] == pytest.approx(by_hand[0])
    assert ("all", "bu") not in got.index  # no sample paths for it: left out, not made up
