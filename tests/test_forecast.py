"""Tests of htsforecast.forecast: validation, result layout, fallbacks, samples, progress."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import make_long as long_frame

from htsforecast._forecast import BaseForecasts, FallbackWarning, forecast
from htsforecast._progress import progress_enabled
from htsforecast.errors import DataError, HTSError
from htsforecast.models import Mean, ModelOutput, Naive, SeasonalNaive


@pytest.fixture(scope="module")
def hier_frame():
    """All nodes of a small grouped hierarchy, via Hierarchy.aggregate."""
    from htsforecast.hierarchy import Hierarchy

    rng = np.random.default_rng(0)
    ds = pd.date_range("2015-01-01", periods=30, freq="QS")
    rows = [
        pd.DataFrame({"state": s, "region": f"{s}{r}", "purpose": p, "ds": ds,
                      "y": rng.poisson(20, len(ds)).astype(float)})
        for s in "AB" for r in range(2) for p in ("hol", "bus")
    ]  # fmt: skip
    hier = Hierarchy.from_formula("(state / region) * purpose")
    return hier.aggregate(pd.concat(rows, ignore_index=True), freq="QS")


MODELS = {"naive": Naive(), "snaive": SeasonalNaive(4), "mean": Mean()}


def test_every_node_model_and_step_present(hier_frame):
    base = forecast(hier_frame, MODELS, h=5, freq="QS", level=[95, 80])
    ids = list(pd.unique(hier_frame["unique_id"]))
    assert isinstance(base, BaseForecasts)
    assert base.ids == ids and base.models == list(MODELS) and base.level == [80, 95]
    fc = base.forecasts
    assert list(fc.columns) == ["unique_id", "ds", "model", "yhat", "yhat_lo_80", "yhat_hi_80",
                                "yhat_lo_95", "yhat_hi_95"]  # fmt: skip
    assert len(fc) == len(ids) * len(MODELS) * 5
    assert not fc.duplicated(["unique_id", "model", "ds"]).any()
    assert fc.drop(columns=["unique_id", "ds", "model"]).notna().all().all()
    expected_ds = pd.date_range("2022-07-01", periods=5, freq="QS")
    expected = np.tile(expected_ds.to_numpy(), len(ids) * len(MODELS))
    np.testing.assert_array_equal(fc["ds"].to_numpy(), expected)
    assert (fc["yhat_lo_95"] <= fc["yhat_lo_80"]).all() and (
        fc["yhat_hi_80"] <= fc["yhat_hi_95"]
    ).all()
    assert base.fallbacks.empty and list(base.fallbacks.columns) == [
        "unique_id",
        "model",
        "reason",
        "fallback_model",
    ]


def test_insample_aligns_with_inputs(hier_frame):
    base = forecast(hier_frame, MODELS, h=2, freq="QS")
    ins = base.insample
    assert list(ins.columns) == ["unique_id", "ds", "model", "y", "fitted", "resid"]
    for name in MODELS:
        block = ins[ins["model"] == name].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            block[["unique_id", "ds", "y"]], hier_frame[["unique_id", "ds", "y"]]
        )
        np.testing.assert_allclose(block["resid"], block["y"] - block["fitted"])
    naive = ins[ins["model"] == "naive"]
    lagged = naive.groupby("unique_id", sort=False)["y"].shift(1)
    np.testing.assert_array_equal(naive["fitted"], lagged)
    snaive = ins[ins["model"] == "snaive"]
    np.testing.assert_array_equal(
        snaive["fitted"], snaive.groupby("unique_id", sort=False)["y"].shift(4)
    )


def test_input_order_does_not_matter(hier_frame):
    shuffled = hier_frame.sample(frac=1.0, random_state=1)
    a = forecast(hier_frame, {"naive": Naive()}, h=3, freq="QS")
    b = forecast(shuffled, {"naive": Naive()}, h=3, freq="QS")
    order = {uid: k for k, uid in enumerate(a.ids)}
    b_sorted = b.forecasts.sort_values(
        ["unique_id", "ds"], key=lambda s: s.map(order) if s.name == "unique_id" else s
    )
    np.testing.assert_array_equal(a.forecasts["yhat"], b_sorted["yhat"])


def test_wide_is_nixtla_style():
    base = forecast(long_frame({"a": np.arange(1.0, 9.0), "b": np.arange(8.0) ** 2}),
                    {"naive": Naive(), "mean": Mean()}, h=2, freq="MS", level=[80, 95])  # fmt: skip
    wide = base.wide()
    assert list(wide.columns) == [
        "unique_id", "ds",
        "naive", "naive-lo-95", "naive-lo-80", "naive-hi-80", "naive-hi-95",
        "mean", "mean-lo-95", "mean-lo-80", "mean-hi-80", "mean-hi-95",
    ]  # fmt: skip
    np.testing.assert_array_equal(wide["naive"], [8, 8, 49, 49])
    np.testing.assert_array_equal(wide["mean"], [4.5, 4.5, 17.5, 17.5])
    np.testing.assert_array_equal(
        wide["mean-lo-80"], base.forecasts.query("model == 'mean'")["yhat_lo_80"]
    )


def test_one_summary_warning_and_fallback_record():
    series = {"long": np.arange(30.0), "short1": np.arange(5.0), "short2": np.arange(3.0)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base = forecast(long_frame(series), {"sn": SeasonalNaive(12)}, h=3, freq="MS")
    ours = [w for w in caught if issubclass(w.category, FallbackWarning)]
    assert len(ours) == 1
    assert "2 node forecast(s) fell back" in str(ours[0].message)
    assert "needs >= 12 observations) [2]" in str(ours[0].message)
    assert base.fallbacks["unique_id"].tolist() == ["short1", "short2"]
    assert set(base.fallbacks["fallback_model"]) == {"Naive()"}
    np.testing.assert_array_equal(base.forecasts.query("unique_id == 'short1'")["yhat"], [4, 4, 4])


def test_no_fallback_raises_naming_nodes():
    with pytest.raises(HTSError, match=r"1 node\(s\) could not be forecast.*short.*fallback=Naive"):
        forecast(long_frame({"long": np.arange(30.0), "short": np.arange(5.0)}),
                 {"sn": SeasonalNaive(12)}, h=3, freq="MS", fallback=None)  # fmt: skip


def test_custom_fallback_chain():
    with pytest.warns(FallbackWarning):
        base = forecast(long_frame({"long": np.arange(30.0), "short": np.array([1.0, 3.0])}),
                        {"sn": SeasonalNaive(12)}, h=2, freq="MS", fallback=[Mean()])  # fmt: skip
    assert base.fallbacks["fallback_model"].tolist() == ["Mean()"]
    np.testing.assert_array_equal(base.forecasts.query("unique_id == 'short'")["yhat"], [2, 2])


class Boom:
    """Forecaster whose whole batch raises."""

    def fit_predict(self, panel, h, level, executor):
        raise FloatingPointError("solver diverged")


class Shapeless:
    def fit_predict(self, panel, h, level, executor):
        return ModelOutput(mean=np.zeros((1, 1)), fitted=np.zeros(1))


def test_crashing_model_falls_back_everywhere():
    with pytest.warns(FallbackWarning, match="FloatingPointError: solver diverged"):
        base = forecast(
            long_frame({"a": np.arange(30.0), "b": np.ones(30)}), {"boom": Boom()}, h=2, freq="MS"
        )
    assert base.fallbacks["fallback_model"].tolist() == ["SeasonalNaive(season_length=12)"] * 2


def test_malformed_model_output_is_an_error():
    with pytest.raises(HTSError, match="malformed output: mean has shape"):
        forecast(
            long_frame({"a": np.arange(30.0), "b": np.ones(30)}),
            {"bad": Shapeless()},
            h=2,
            freq="MS",
        )


class WithSamples:
    """A Forecaster producing sample paths and failing on node 'f'."""

    n_samples = 7

    def fit_predict(self, panel, h, level, executor):
        n = panel.n_series
        mean = np.tile(np.arange(1.0, h + 1), (n, 1))
        lo = {lv: mean - 1 for lv in level}
        hi = {lv: mean + 1 for lv in level}
        samples = mean[:, :, None] + np.linspace(-1, 1, self.n_samples)
        fails = {i: "nope" for i in range(n) if panel.ids[i] == "f"}
        return ModelOutput(mean, np.full(len(panel.y), np.nan), lo, hi, samples, fails)


def test_samples_for_model_and_gaussian_paths_for_fallback_nodes():
    series = {"a": np.arange(40.0), "f": np.random.default_rng(1).normal(10, 2, 40)}
    with pytest.warns(FallbackWarning, match="nope"):
        base = forecast(long_frame(series), {"s": WithSamples()}, h=3, freq="MS")
    s = base.samples["s"]
    assert s.shape == (2, 3, 7)
    np.testing.assert_allclose(s[0], np.arange(1.0, 4)[:, None] + np.linspace(-1, 1, 7))
    # fallback (seasonal naive) node: Gaussian paths around its own forecast, finite, varied
    fb_mean = base.forecasts.query("unique_id == 'f'")["yhat"].to_numpy()
    assert np.isfinite(s[1]).all() and (s[1].std(axis=1) > 0).all()
    assert np.all(np.abs(s[1].mean(axis=1) - fb_mean) < 4 * s[1].std(axis=1))
    assert (
        "yhat_lo_80" not in base.forecasts.columns
    )  # the 80% level asked of the fallback stays internal


def test_single_observation_node_keeps_a_point_forecast():
    with pytest.warns(FallbackWarning):
        base = forecast(long_frame({"a": np.arange(30.0), "one": np.array([4.0])}), {"n": Naive()},
                        h=2, freq="MS", level=[80])  # fmt: skip
    one = base.forecasts.query("unique_id == 'one'")
    np.testing.assert_array_equal(one["yhat"], [4, 4])
    assert one["yhat_lo_80"].isna().all()
    assert base.fallbacks["fallback_model"].tolist() == ["Naive() (no interval)"]


# ----------------------------------------------------------------------------- validation

GOOD = long_frame({"A": np.arange(6.0), "B": np.arange(6.0)})


def test_missing_column():
    with pytest.raises(DataError, match="missing column.*'y'|missing column.*y"):
        forecast(GOOD.drop(columns="y"), MODELS, h=1, freq="MS")


def test_nan_y_names_series():
    bad = GOOD.copy()
    bad.loc[8, "y"] = np.nan
    with pytest.raises(DataError, match=r"1 NaN/inf value\(s\) in series B, at row\(s\) 8\."):
        forecast(bad, MODELS, h=1, freq="MS")


def test_non_numeric_y():
    with pytest.raises(DataError, match="must be numeric"):
        forecast(GOOD.assign(y="x"), MODELS, h=1, freq="MS")


def test_duplicate_rows_named():
    bad = pd.concat([GOOD, GOOD.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError, match=r"duplicated \(unique_id, ds\) row\(s\): A @ 2000-04-01"):
        forecast(bad, MODELS, h=1, freq="MS")


def test_dates_off_freq_named():
    bad = GOOD.copy()
    bad.loc[7, "ds"] = pd.Timestamp("2000-02-15")
    with pytest.raises(
        DataError, match=r"not on frequency 'MS': 2000-02-15.*in series B \(rows 7\)"
    ):
        forecast(bad, MODELS, h=1, freq="MS")


def test_wrong_freq_gets_a_hint():
    month_ends = long_frame({"A": np.arange(6.0)}, freq="ME")
    with pytest.raises(DataError, match="look like freq='ME'"):
        forecast(month_ends, MODELS, h=1, freq="MS")


def test_gap_named():
    bad = GOOD.drop(index=[9]).reset_index(drop=True)
    with pytest.raises(DataError, match=r"1 gap\(s\).*B after 2000-03-01"):
        forecast(bad, MODELS, h=1, freq="MS")


def test_missing_unique_id():
    bad = GOOD.copy()
    bad.loc[2, "unique_id"] = None
    with pytest.raises(DataError, match=r"'unique_id' is missing at row\(s\) 2"):
        forecast(bad, MODELS, h=1, freq="MS")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"h": 0}, "h must be a positive integer"),
        ({"freq": "monthly"}, "not a valid pandas frequency alias"),
        ({"level": [80, 150]}, "strictly between 0 and 100"),
        ({"models": {}}, "non-empty dict"),
        ({"fallback": "snaive"}, "fallback must be"),
    ],
)
def test_argument_errors(kwargs, match):
    args = {"Y": GOOD, "models": MODELS, "h": 2, "freq": "MS", **kwargs}
    with pytest.raises(DataError, match=match):
        forecast(**args)


def test_raw_library_models_get_a_hint():
    from statsforecast.models import AutoETS

    with pytest.raises(TypeError, match=r"StatsForecastModel\(AutoETS"):
        forecast(GOOD, {"ets": AutoETS()}, h=2, freq="MS")


def test_progress_default_follows_tty(monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_enabled(None) is False
    assert progress_enabled(True) is True and progress_enabled(False) is False

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress_enabled(None) is True
