"""Pipeline: fit -> save -> load -> predict equals one forecast + reconcile call."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from statsforecast.models import AutoETS

from htsforecast import DataError, Hierarchy, Pipeline, forecast, reconcile
from htsforecast.models import SeasonalNaive, StatsForecastModel
from htsforecast.pipeline import VersionWarning
from htsforecast.reconciliation import BottomUp, MinTrace, TopDown


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(7)
    ds = pd.date_range("2016-01-01", periods=48, freq="MS")
    season = 10 * np.sin(2 * np.pi * np.arange(48) / 12)
    rows = [
        pd.DataFrame({"state": s, "city": c, "ds": ds, "y": 50 + season + rng.normal(0, 2, 48)})
        for s, c in [("A", "x"), ("A", "y"), ("B", "z"), ("B", "w")]
    ]
    hier = Hierarchy.from_formula("state / city")
    Y = hier.aggregate(pd.concat(rows, ignore_index=True), freq="MS")
    models = {
        "ets": StatsForecastModel(AutoETS(season_length=12, model="ZZA")),
        "snaive": SeasonalNaive(12),
    }
    methods = {
        "bu": BottomUp(),
        "td": TopDown("forecast_proportions"),
        "shrink": MinTrace("mint_shrink"),
        "wls": MinTrace("wls_var", nonnegative=True),
    }
    pipe = Pipeline(hier, models, methods, freq="MS", h_max=12, level=[80, 95]).fit(Y)
    return hier, Y, models, methods, pipe


@pytest.mark.parametrize("h", [5, 12])
def test_fit_save_load_predict_equals_forecast_plus_reconcile(case, tmp_path, h) -> None:
    hier, Y, models, methods, pipe = case
    path = pipe.save(tmp_path / "model")
    loaded = Pipeline.load(path)
    got = loaded.predict(h).forecasts
    with pytest.warns(UserWarning, match="residual periods have NaN"):  # snaive's first season
        ref = reconcile(forecast(Y, models, h, freq="MS", level=[80, 95]), hier, methods)
    pd.testing.assert_frame_equal(got, ref.forecasts, check_exact=True)
    assert set(got["method"]) == {"base", "bu", "td", "shrink", "wls"}
    assert got["ds"].nunique() == h
    meta = json.loads((path / "meta.json").read_text())
    assert meta["h_max"] == 12 and meta["level"] == [80, 95] and "statsforecast" in meta["versions"]


def test_from_forecasts_needs_no_refit(case) -> None:
    hier, Y, models, methods, pipe = case
    pipe2 = Pipeline.from_forecasts(hier, pipe.base_, {"bu": BottomUp()})
    a = pipe2.predict(3).forecasts
    b = pipe.predict(3).forecasts
    pd.testing.assert_frame_equal(a, b[b["method"].isin(["base", "bu"])].reset_index(drop=True))


def test_loading_under_other_versions_warns(case, tmp_path) -> None:
    *_, pipe = case
    path = pipe.save(tmp_path / "m")
    saved = pickle.loads((path / "pipeline.pkl").read_bytes())
    saved["pipeline"].versions_ = {**pipe.versions_, "statsforecast": "0.0.1"}
    (path / "pipeline.pkl").write_bytes(pickle.dumps(saved))
    with pytest.warns(VersionWarning, match=r"statsforecast 0\.0\.1 -> "):
        Pipeline.load(path)
    pipe.save(path)  # overwriting an existing folder works
    Pipeline.load(path)


def test_pipeline_errors(case, tmp_path) -> None:
    hier, Y, models, methods, pipe = case
    with pytest.raises(DataError, match="beyond h_max=12"):
        pipe.predict(13)
    with pytest.raises(DataError, match="X_future"):
        pipe.predict(3, X_future=Y)
    with pytest.raises(DataError, match="call fit"):
        Pipeline(hier, models, methods, freq="MS", h_max=3).predict()
    with pytest.raises(DataError, match="h_max must be"):
        Pipeline(hier, models, methods, freq="MS", h_max=0)
    with pytest.raises(DataError, match="not found"):
        Pipeline.load(tmp_path / "nothing")
