"""Silent degradation made loud: each case has a warning (or error) that says what and why."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from htsforecast import Hierarchy, forecast
from htsforecast.models import ProphetModel
from htsforecast.models._prophet import warn_unknown_nodes
from htsforecast.reconciliation import BottomUp, MinTrace, reconcile
from htsforecast.reconciliation._arrays import count_negatives
from htsforecast.reconciliation._covariance import ResidualGapWarning

T, H = 24, 3


def _hier_and_frames(models=("m1", "m2"), nan_node="g=a", n_nan=4, seed=0):
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2020-01-01", periods=T, freq="MS")
    df = pd.DataFrame(
        [(g, d, 10.0 + rng.normal()) for g in "abcd" for d in dates], columns=["g", "ds", "y"]
    )
    hier = Hierarchy.from_formula("g")
    Y = hier.aggregate(df)
    Y_df = Y.copy()
    for m in models:
        Y_df[m] = Y_df["y"] + rng.normal(0, 1, len(Y_df))
        Y_df.loc[(Y_df["unique_id"] == nan_node) & (Y_df["ds"] < dates[n_nan]), m] = np.nan
    fds = pd.date_range(dates[-1], periods=H + 1, freq="MS")[1:]
    Y_hat_df = pd.DataFrame(
        {"unique_id": np.repeat(hier.node_ids, H), "ds": np.tile(fds, hier.n_nodes)}
    )
    for m in models:
        Y_hat_df[m] = rng.normal(10, 1, len(Y_hat_df))
    return hier, Y_hat_df, Y_df


def test_nan_residual_periods_give_one_summary_line_that_says_why() -> None:
    hier, Y_hat_df, Y_df = _hier_and_frames()
    methods = {"shrink": MinTrace("mint_shrink"), "cov": MinTrace("mint_cov"), "bu": BottomUp()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reconcile(Y_hat_df, hier, methods, Y_df=Y_df, intervals=None)
    gaps = [w for w in caught if issubclass(w.category, ResidualGapWarning)]
    assert len(gaps) == 1  # 2 models x 2 covariance methods used to give 4 warnings
    msg = str(gaps[0].message)
    assert "4 of 24 residual periods have NaN" in msg
    assert "4 MinTrace fit(s)" in msg
    assert "1 node(s)" in msg and "'g=a'" in msg  # names the node that causes it
    assert "seasonal naive's first season" in msg  # and why
    assert gaps[0].filename == __file__  # attributed to the caller, not a library line


def test_other_reconcile_warnings_are_emitted_once_with_a_count() -> None:
    hier, Y_hat_df, Y_df = _hier_and_frames(n_nan=0)
    scale = np.where(Y_df["unique_id"] == "total", 4.0, 1.0)  # coherent: total = sum of 4
    for m in ("m1", "m2"):  # coherent residuals make mint_cov's C W C' singular
        Y_df[m] = Y_df["y"] - scale * np.tile(np.arange(T) % 3 - 1.0, hier.n_nodes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reconcile(Y_hat_df, hier, {"cov": MinTrace("mint_cov")}, Y_df=Y_df, intervals=None)
    fallback = [w for w in caught if "Falling back to mint_shrink" in str(w.message)]
    assert len(fallback) == 1, [str(w.message) for w in caught]
    assert str(fallback[0].message).endswith("(2 times)")  # once for m1, once for m2


def test_diagnostics_do_not_count_round_off_as_negative() -> None:
    assert count_negatives(np.array([1.0, -1e-14, 0.0, 5.0])) == 0
    assert count_negatives(np.array([1e6, -1e-7])) == 0  # relative to the forecasts' scale
    assert count_negatives(np.array([1.0, -1e-6, -0.5])) == 2
    hier, Y_hat_df, Y_df = _hier_and_frames(models=("m1",))
    bottom = Y_hat_df["unique_id"] != "total"
    Y_hat_df.loc[bottom, "m1"] = 0.0
    Y_hat_df.loc[Y_hat_df["unique_id"] == "g=a", "m1"] = -1e-14
    Y_hat_df.loc[Y_hat_df["unique_id"] == "total", "m1"] = 0.0
    rec = reconcile(Y_hat_df, hier, {"bu": BottomUp()}, Y_df=Y_df, intervals=None)
    assert rec.diagnostics["negatives_before"].tolist() == [0]
    Y_hat_df.loc[Y_hat_df["unique_id"] == "g=a", "m1"] = -0.25
    rec = reconcile(Y_hat_df, hier, {"bu": BottomUp()}, Y_df=Y_df, intervals=None)
    assert rec.diagnostics["negatives_before"].tolist() == [H]
    assert rec.diagnostics["negatives_after"].tolist() == [2 * H]  # g=a and the total


def test_prophet_per_node_keys_matching_no_node_warn_with_a_suggestion() -> None:
    ids = ["total", "lang=de", "lang=en"]
    with pytest.warns(UserWarning, match=r"1 key\(s\) match no node.*'lang=DE' \(did you mean"):
        warn_unknown_nodes(["lang=DE", "total"], ids, "ProphetModel(per_node=...)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_unknown_nodes(["lang=de"], ids, "x")  # all keys known: silent


def test_prophet_per_node_typo_warns_through_forecast() -> None:
    dates = pd.date_range("2020-01-01", periods=12, freq="MS")
    Y = pd.DataFrame({"unique_id": "lang=de", "ds": dates, "y": np.arange(12.0)})
    model = ProphetModel(
        per_node={"lang=DE": {"changepoint_prior_scale": 0.5}},
        yearly_seasonality=False,
        weekly_seasonality=False,
        daily_seasonality=False,
    )
    with pytest.warns(UserWarning, match="did you mean 'lang=de'"):
        forecast(Y, {"prophet": model}, h=2, freq="MS")


def test_cross_validate_gives_one_gap_summary_for_all_windows() -> None:
    from htsforecast import cross_validate
    from htsforecast.models import SeasonalNaive

    hier, _, _ = _hier_and_frames(models=("m1",))
    rng = np.random.default_rng(2)
    dates = pd.date_range("2019-01-01", periods=40, freq="MS")
    df = pd.DataFrame(
        [(g, d, 10.0 + rng.normal()) for g in "abcd" for d in dates], columns=["g", "ds", "y"]
    )
    Y = hier.aggregate(df)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cross_validate(
            Y, hier, {"snaive": SeasonalNaive(12)}, {"shrink": MinTrace("mint_shrink")},
            h=3, n_windows=3, freq="MS",
        )  # fmt: skip
    gaps = [w for w in caught if issubclass(w.category, ResidualGapWarning)]
    assert len(gaps) == 1  # one line for 3 windows (each dropped the first season)
    msg = str(gaps[0].message)
    assert "12 of 31, 12 of 34, 12 of 37 residual periods" in msg and "3 MinTrace fit(s)" in msg
    assert "5 node(s)" in msg
    assert gaps[0].filename == __file__
