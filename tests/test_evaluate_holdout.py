"""htsforecast.evaluate: per-level holdout accuracy in one call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import htsforecast
from htsforecast import DataError, Hierarchy, cross_validate, evaluate, forecast, reconcile
from htsforecast.models import Naive, SeasonalNaive
from htsforecast.reconciliation import BottomUp, MinTrace

H = 4


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(3)
    ds = pd.date_range("2015-01-01", periods=24, freq="QS")
    rows = [
        pd.DataFrame({"state": s, "city": c, "ds": ds, "y": 30 + rng.normal(0, 2, 24).cumsum()})
        for s, c in [("A", "x"), ("A", "y"), ("B", "z")]
    ]
    hier = Hierarchy.from_formula("state / city")
    Y = hier.aggregate(pd.concat(rows, ignore_index=True))
    train = Y[Y["ds"] < ds[-H]]
    base = forecast(train, {"naive": Naive()}, h=H, freq="QS", level=[80])
    rec = reconcile(base, hier, {"bu": BottomUp(), "ols": MinTrace("ols")})
    return hier, Y, train, rec


def test_evaluate_matches_a_hand_computation(case) -> None:
    hier, Y, train, rec = case
    table = evaluate(rec, Y, hier, metrics=["mae", "mase"], season_length=4)
    assert list(table.columns) == ["level", "model", "method", "metric", "value"]
    assert list(dict.fromkeys(table["level"])) == [*hier.levels, "all"]
    wide_y = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids]
    actual, hist = wide_y.iloc[:, -H:].to_numpy(), wide_y.iloc[:, :-H].to_numpy()
    scale = np.abs(hist[:, 4:] - hist[:, :-4]).mean(axis=1)
    for method in ["base", "bu", "ols"]:
        part = rec.forecasts[rec.forecasts["method"] == method]
        yhat = part.pivot(index="unique_id", columns="ds", values="yhat").loc[hier.node_ids]
        mae = np.abs(actual - yhat.to_numpy()).mean(axis=1)
        got = table[(table["method"] == method)].set_index(["metric", "level"])["value"]
        pos = {n: i for i, n in enumerate(hier.node_ids)}
        for level, nodes in [*hier.levels.items(), ("all", hier.node_ids)]:
            rows = [pos[n] for n in nodes]
            assert got[("mae", level)] == pytest.approx(mae[rows].mean(), rel=1e-12)
            assert got[("mase", level)] == pytest.approx((mae / scale)[rows].mean(), rel=1e-12)


def test_evaluate_equals_cross_validate_on_its_last_window(case) -> None:
    hier, Y, _, _ = case
    models = {"naive": Naive(), "snaive": SeasonalNaive(4)}
    methods = {"bu": BottomUp(), "ols": MinTrace("ols")}
    metrics = ("mae", "rmse", "mase", "coverage")
    cv = cross_validate(
        Y, hier, models, methods, h=H, n_windows=1, freq="QS", level=[80], metrics=metrics
    ).table
    train = Y[Y["ds"] < Y["ds"].max() - pd.DateOffset(months=3 * (H - 1))]
    rec = reconcile(forecast(train, models, h=H, freq="QS", level=[80]), hier, methods)
    ours = evaluate(rec.forecasts, Y, hier, metrics=metrics, freq="QS")
    key = ["level", "model", "method", "metric"]
    merged = cv.merge(ours, on=key, suffixes=("_cv", "_ev"), validate="one_to_one")
    assert len(merged) == len(cv) == len(ours)
    np.testing.assert_allclose(merged["value_ev"], merged["value_cv"], rtol=1e-12)
    assert set(ours["metric"]) == {"mae", "rmse", "mase", "coverage_80"}


def test_evaluate_base_forecasts_and_explicit_train(case) -> None:
    hier, Y, train, _ = case
    base = forecast(train, {"naive": Naive()}, h=H, freq="QS")
    test = Y[Y["ds"] > train["ds"].max()]
    a = evaluate(base, test, hier, ["rmse", "mase"], train=train, season_length=4)
    b = evaluate(base.forecasts, Y, hier, ["rmse", "mase"], season_length=4)
    assert set(a["method"]) == {"base"}
    pd.testing.assert_frame_equal(a, b)
    assert htsforecast.evaluate is evaluate


def test_evaluate_errors_name_the_problem(case) -> None:
    hier, Y, train, rec = case
    with pytest.raises(DataError, match="no rows on the forecast dates"):
        evaluate(rec, train, hier, ["mae"])
    with pytest.raises(DataError, match="need more than season_length=4"):
        evaluate(rec, Y[Y["ds"] > train["ds"].max()], hier, ["mase"], season_length=4)
    with pytest.raises(DataError, match="missing column"):
        evaluate(rec.forecasts.drop(columns="yhat"), Y, hier)
    with pytest.raises(DataError, match="unknown metric"):
        evaluate(rec, Y, hier, ["accuracy"])
    with pytest.raises(DataError, match="no rows for 1 node"):
        evaluate(rec.forecasts[rec.forecasts["unique_id"] != "total"], Y, hier, ["mae"])
    with pytest.warns(RuntimeWarning, match="left out of the means"):
        evaluate(rec, Y[Y["unique_id"] != "total"], hier, ["mae"])
