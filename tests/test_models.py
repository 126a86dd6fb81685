"""Tests of htsforecast.models: built-in baselines, statsforecast and Prophet adapters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_long as long_frame

from htsforecast import forecast
from htsforecast.models import (
    LocalExecutor,
    Mean,
    Naive,
    Panel,
    ProphetModel,
    SeasonalNaive,
    SeriesForecast,
    SeriesForecaster,
    StatsForecastModel,
    season_length_for,
)
from htsforecast.validation import validate_panel

Z80 = 1.2815515655446004  # standard normal 0.9 quantile


def panel_of(df: pd.DataFrame, freq: str = "MS") -> Panel:
    return validate_panel(df, freq).to_model_panel()


def random_series(n_series: int, n_obs: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n_obs)
    return {
        f"s{i}": 50 + 10 * np.sin(2 * np.pi * t / 12 + i) + rng.normal(0, 2, n_obs).cumsum()
        for i in range(n_series)
    }


EX = LocalExecutor()


# ----------------------------------------------------------------------------- baselines


def test_seasonal_naive_matches_hand_computation():
    y = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7], dtype=float)
    out = SeasonalNaive(4).fit_predict(panel_of(long_frame({"a": y})), 6, (80,), EX)
    # y_{T+h} = y_{T+h-4(k+1)}: last season 5, 8, 9, 7 repeated
    np.testing.assert_array_equal(out.mean[0], [5, 8, 9, 7, 5, 8])
    np.testing.assert_array_equal(out.fitted[4:], y[:-4])
    assert np.isnan(out.fitted[:4]).all()
    # residuals y_t - y_{t-4}: 2 8 -2 5 0 -6 3 2 4 4 -> sum of squares 178 over N=10, K=0
    sigma = np.sqrt(178 / 10)
    sd = sigma * np.sqrt([1, 1, 1, 1, 2, 2])
    np.testing.assert_allclose(out.lo[80][0], out.mean[0] - Z80 * sd, rtol=1e-12)
    np.testing.assert_allclose(out.hi[80][0], out.mean[0] + Z80 * sd, rtol=1e-12)


def test_naive_and_mean_match_hand_computation():
    y = np.array([2.0, 4.0, 3.0, 7.0])
    panel = panel_of(long_frame({"a": y}))
    naive = Naive().fit_predict(panel, 3, (80,), EX)
    np.testing.assert_array_equal(naive.mean[0], [7, 7, 7])
    # residuals 2, -1, 4: sigma^2 = 21 / 3; sd_h = sigma sqrt(h)
    np.testing.assert_allclose(naive.hi[80][0] - 7, Z80 * np.sqrt(7 * np.arange(1, 4)))
    mean = Mean().fit_predict(panel, 2, (80,), EX)
    np.testing.assert_array_equal(mean.mean[0], [4, 4])
    np.testing.assert_array_equal(mean.fitted, [4, 4, 4, 4])
    # residuals -2 0 -1 3: sigma^2 = 14 / (4 - 1); sd = sigma sqrt(1 + 1/4)
    np.testing.assert_allclose(mean.hi[80][0] - 4, Z80 * np.sqrt(14 / 3 * 1.25))


@pytest.mark.parametrize(
    ("ours", "theirs_name", "kwargs"),
    [
        (Naive(), "Naive", {}),
        (SeasonalNaive(12), "SeasonalNaive", {"season_length": 12}),
        (Mean(), "HistoricAverage", {}),
    ],
)
def test_baselines_equal_statsforecast(ours, theirs_name, kwargs):
    import statsforecast.models as sfm
    from statsforecast import StatsForecast

    series = random_series(5, 40)
    series["short"] = series.pop("s4")[:27]  # ragged lengths
    df = long_frame(series)
    out = ours.fit_predict(panel_of(df), 7, (80, 95), EX)
    sf = StatsForecast(models=[getattr(sfm, theirs_name)(**kwargs)], freq="MS")
    fc = sf.forecast(df=df, h=7, level=[80, 95], fitted=True)
    fc = fc.set_index("unique_id").loc[list(series)]
    col = theirs_name
    np.testing.assert_allclose(out.mean.ravel(), fc[col].to_numpy(), rtol=1e-10)
    for lv in (80, 95):
        np.testing.assert_allclose(out.lo[lv].ravel(), fc[f"{col}-lo-{lv}"], rtol=1e-10)
        np.testing.assert_allclose(out.hi[lv].ravel(), fc[f"{col}-hi-{lv}"], rtol=1e-10)
    fv = sf.forecast_fitted_values().set_index("unique_id").loc[list(series)]
    np.testing.assert_allclose(out.fitted, fv[col].to_numpy(), rtol=1e-10)


def test_seasonal_naive_reports_short_series():
    out = SeasonalNaive(12).fit_predict(panel_of(long_frame(random_series(2, 8))), 3, (), EX)
    assert set(out.failures) == {0, 1}
    assert "season_length=12" in out.failures[0]


def test_season_length_for():
    assert [season_length_for(f) for f in ["MS", "ME", "QS", "QS-OCT", "D", "h", "YS", "2MS"]] == [
        12,
        12,
        4,
        4,
        7,
        24,
        1,
        1,
    ]


# ----------------------------------------------------------------------------- statsforecast


def _direct(model, df, h, level):
    from statsforecast import StatsForecast

    sf = StatsForecast(models=[model], freq="MS")
    fc = sf.forecast(df=df, h=h, level=level, fitted=True)
    return fc, sf.forecast_fitted_values()


def test_statsforecast_model_equals_direct_statsforecast():
    from statsforecast.models import AutoETS

    series = random_series(4, 48, seed=1)
    df = long_frame(series)
    base = forecast(df, {"ets": StatsForecastModel(AutoETS(season_length=12))}, h=6, freq="MS",
                    level=[80, 95])  # fmt: skip
    fc, fv = _direct(AutoETS(season_length=12), df, 6, [80, 95])
    wide = base.wide()
    np.testing.assert_array_equal(wide["unique_id"], fc["unique_id"])
    np.testing.assert_array_equal(wide["ds"], fc["ds"])
    for col in ["", "-lo-95", "-lo-80", "-hi-80", "-hi-95"]:
        np.testing.assert_allclose(wide[f"ets{col}"], fc[f"AutoETS{col}"], rtol=1e-12)
    np.testing.assert_allclose(base.insample["fitted"], fv["AutoETS"], rtol=1e-12)
    assert base.fallbacks.empty


def test_statsforecast_failing_node_falls_back_and_others_are_exact():
    from statsforecast.models import HoltWinters

    series = random_series(3, 40, seed=2)
    series["z_bad"] = series["s0"][:15]  # HoltWinters(12) raises on 13-18 observations
    df = long_frame(series)
    model = HoltWinters(season_length=12)
    with pytest.warns(UserWarning, match="1 node forecast"):
        base = forecast(df, {"hw": StatsForecastModel(model)}, h=4, freq="MS", level=[80, 95])
    fb = base.fallbacks
    assert fb["unique_id"].tolist() == ["z_bad"]
    assert fb["fallback_model"].iloc[0] == "SeasonalNaive(season_length=12)"
    assert fb["reason"].iloc[0] == "Exception: no model able to be fitted"
    good = df[df.unique_id != "z_bad"]
    fc, fv = _direct(HoltWinters(season_length=12), good, 4, [80, 95])
    ours = base.wide().iloc[:12]
    for col in ["", "-lo-95", "-lo-80", "-hi-80", "-hi-95"]:
        np.testing.assert_allclose(ours[f"hw{col}"], fc[f"HoltWinters{col}"], rtol=1e-12)
    snaive = SeasonalNaive(12).fit_predict(panel_of(df[df.unique_id == "z_bad"]), 4, (80,), EX)
    np.testing.assert_allclose(base.wide()["hw"].iloc[12:], snaive.mean[0])


def test_statsforecast_too_short_goes_straight_to_fallback():
    from statsforecast.models import AutoETS

    model = StatsForecastModel(AutoETS(season_length=12))
    assert model.min_obs == 7
    series = random_series(2, 30, seed=3)
    series["tiny"] = np.array([1.0, 2.0, 4.0])
    with pytest.warns(UserWarning, match="too short"):
        base = forecast(long_frame(series), {"ets": model}, h=2, freq="MS")
    assert base.fallbacks.to_dict("records") == [
        {
            "unique_id": "tiny",
            "model": "ets",
            "reason": "too short for StatsForecastModel(AutoETS) (needs >= 7 observations)",
            "fallback_model": "Naive()",
        }
    ]
    np.testing.assert_array_equal(base.forecasts.query("unique_id == 'tiny'")["yhat"], [4, 4])


def test_statsforecast_model_rejects_non_models():
    with pytest.raises(TypeError, match="statsforecast model"):
        StatsForecastModel("AutoETS")


# ----------------------------------------------------------------------------- user models


class Drift(SeriesForecaster):
    """The docstring example: a random walk with drift, one series at a time."""

    min_obs = 2

    def fit_predict_series(self, uid, ds, y, h, level, future_ds):
        if uid == "boom":
            raise RuntimeError("drift exploded")
        slope = (y[-1] - y[0]) / (len(y) - 1)
        fitted = np.r_[np.nan, y[:-1] + slope]
        return SeriesForecast(mean=y[-1] + slope * np.arange(1, h + 1), fitted=fitted)


def test_series_forecaster_protocol_runs_and_isolates_failures():
    series = {"a": np.array([1.0, 2.0, 4.0]), "boom": np.arange(5.0), "c": np.array([5.0, 3.0])}
    with pytest.warns(UserWarning, match="drift exploded"):
        base = forecast(long_frame(series), {"drift": Drift()}, h=2, freq="MS")
    yhat = base.forecasts.set_index("unique_id")["yhat"]
    np.testing.assert_allclose(yhat.loc["a"], [5.5, 7.0])
    np.testing.assert_allclose(yhat.loc["c"], [1.0, -1.0])
    np.testing.assert_allclose(yhat.loc["boom"], [4.0, 4.0])  # Naive fallback
    assert base.fallbacks["reason"].tolist() == ["RuntimeError: drift exploded"]


def test_parallel_executor_gives_identical_results():
    series = random_series(12, 20, seed=4)
    df = long_frame(series)
    one = forecast(df, {"drift": Drift()}, h=3, freq="MS", n_jobs=1)
    two = forecast(df, {"drift": Drift()}, h=3, freq="MS", n_jobs=2)
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)
    pd.testing.assert_frame_equal(one.insample, two.insample)


def test_local_executor_partitions_cover_everything():
    chunks = LocalExecutor(n_jobs=2, chunks_per_job=3).partition(10)
    assert len(chunks) == 6
    np.testing.assert_array_equal(np.concatenate(chunks), np.arange(10))
    assert LocalExecutor(n_jobs=2).partition(0) == []


# ----------------------------------------------------------------------------- prophet

PROPHET_KW = dict(yearly_seasonality=False, weekly_seasonality=False, daily_seasonality=False)


@pytest.fixture(scope="module")
def prophet_base():
    series = random_series(3, 24, seed=5)
    series["logistic"] = 40 + np.arange(24.0)
    series["nocap"] = 10 + np.arange(24.0)
    series["single"] = np.array([3.0])
    per_node = {
        "logistic": {"growth": "logistic", "cap": 70.0},
        "nocap": {"growth": "logistic"},  # Prophet raises: no 'cap' column
        "s0": {"changepoints": ["2000-06-01", "2001-01-01"]},
    }
    model = ProphetModel(per_node=per_node, n_samples=40, seed=1, **PROPHET_KW)
    with pytest.warns(UserWarning, match="fell back"):
        base = forecast(long_frame(series), {"prophet": model}, h=4, freq="MS", level=[80])
    return series, base


def test_prophet_every_node_and_interval_order(prophet_base):
    series, base = prophet_base
    fc = base.forecasts
    assert len(fc) == len(series) * 4 and fc["yhat"].notna().all()
    with_interval = fc[fc.unique_id != "single"]  # one observation: no interval
    assert (with_interval["yhat_lo_80"] <= with_interval["yhat_hi_80"]).all()
    assert fc[fc.unique_id == "single"]["yhat_lo_80"].isna().all()
    assert base.samples["prophet"].shape == (len(series), 4, 40)
    assert np.isfinite(base.samples["prophet"]).all()
    logistic = fc[fc.unique_id == "logistic"]["yhat"]
    assert (logistic < 70.0).all()  # the per-node cap bounds the logistic trend


def test_prophet_fallback_path(prophet_base):
    _, base = prophet_base
    fb = base.fallbacks.set_index("unique_id")
    assert set(fb.index) == {"nocap", "single"}
    assert "cap" in fb.loc["nocap", "reason"]
    assert fb.loc["single", "reason"].startswith("too short for ProphetModel")
    assert fb.loc["single", "fallback_model"] == "Naive() (no interval)"


def test_prophet_equals_prophet_called_directly(prophet_base):
    from prophet import Prophet

    series, base = prophet_base
    y = series["s1"]
    hist = pd.DataFrame({"ds": pd.date_range("2000-01-01", periods=24, freq="MS"), "y": y})
    m = Prophet(uncertainty_samples=0, **PROPHET_KW).fit(hist)
    future = pd.DataFrame({"ds": pd.date_range("2002-01-01", periods=4, freq="MS")})
    ins = base.insample[base.insample.unique_id == "s1"]
    np.testing.assert_allclose(ins["fitted"], m.predict(hist)["yhat"], rtol=1e-6)
    fc = base.forecasts[base.forecasts.unique_id == "s1"]
    np.testing.assert_allclose(fc["yhat"], m.predict(future)["yhat"], rtol=1e-6)
    np.testing.assert_allclose(
        fc["yhat_lo_80"], np.percentile(base.samples["prophet"][1], 10, axis=1)
    )


def test_prophet_rejects_bad_n_samples():
    with pytest.raises(ValueError, match="n_samples"):
        ProphetModel(n_samples=0)


def test_statsforecast_failing_nodes_are_isolated_without_probing(monkeypatch):
    """A node that raises is isolated by refitting parts of the batch; no synthetic probe fit."""
    from statsforecast.models import HoltWinters

    import htsforecast.models._statsforecast as sfmod

    assert not hasattr(sfmod, "_probe_keys") and not hasattr(sfmod, "_FailMarker")
    series = {f"n{k:02d}": v for k, v in enumerate(random_series(12, 40, seed=6).values())}
    series["z_bad"] = series["n00"][:15]  # HoltWinters(12) raises on 13-18 observations
    series["z_bad2"] = series["n01"][:14]
    df = long_frame(series)
    out = StatsForecastModel(HoltWinters(season_length=12)).fit_predict(
        panel_of(df), 3, (80, 95), EX
    )
    assert out.failures == {12: "Exception: no model able to be fitted",
                            13: "Exception: no model able to be fitted"}  # fmt: skip
    good = df[~df.unique_id.str.startswith("z_")]
    fc, fv = _direct(HoltWinters(season_length=12), good, 3, [80, 95])
    np.testing.assert_allclose(out.mean[:12].ravel(), fc["HoltWinters"], rtol=1e-12)
    np.testing.assert_allclose(out.lo[95][:12].ravel(), fc["HoltWinters-lo-95"], rtol=1e-12)
    np.testing.assert_allclose(out.hi[80][:12].ravel(), fc["HoltWinters-hi-80"], rtol=1e-12)
    np.testing.assert_allclose(out.fitted[: 12 * 40], fv["HoltWinters"], rtol=1e-12)
    assert np.isnan(out.mean[12:]).all()


def test_prophet_parallel_equals_sequential():
    df = long_frame(random_series(3, 24, seed=7))
    model = ProphetModel(n_samples=20, seed=3, **PROPHET_KW)
    one = forecast(df, {"p": model}, h=3, freq="MS", level=[90], n_jobs=1)
    two = forecast(df, {"p": model}, h=3, freq="MS", level=[90], n_jobs=2)
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)
    np.testing.assert_array_equal(one.samples["p"], two.samples["p"])
