"""Combination, per-node selection, intermittent-demand models and the LightGBM global model.

Tiny data; references are hand computations, the members called directly, statsforecast and
mlforecast called directly. Leakage: backtest windows and cross-validation folds never see
the test period.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from htsforecast import forecast
from htsforecast.errors import DataError
from htsforecast.models import (
    Combination,
    IntermittentModel,
    LocalExecutor,
    Mean,
    Naive,
    Panel,
    SeasonalNaive,
    Selected,
    intermittent_models,
)
from htsforecast.models._backtest import cut_windows

EX = LocalExecutor(1)


def _frame(n_series: int = 3, T: int = 24, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2010-01-01", periods=T, freq="QS")
    rows = []
    for i in range(n_series):
        season = np.tile([0.0, 5.0, -3.0, 2.0], T // 4 + 1)[:T] * (i + 1)
        y = 50 + i * 10 + 0.3 * i * np.arange(T) + season + rng.normal(0, 1 + i, T)
        rows.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    return pd.concat(rows, ignore_index=True)


def _panel(df: pd.DataFrame) -> Panel:
    return Panel.from_long(df.sort_values(["unique_id", "ds"]).reset_index(drop=True), "QS")


class Recorder:
    """A model that records the last date of every series it is given (leakage probe)."""

    min_obs = 1

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seen: list[np.ndarray] = []

    def fit_predict(self, panel, h, level, executor):
        self.seen.append(panel.ds[panel.indptr[1:] - 1])
        return self.inner.fit_predict(panel, h, level, executor)


# ----------------------------------------------------------------------------- backtest windows
def test_windows_cut_before_their_test_period() -> None:
    p = _panel(_frame(T=20))
    wins = cut_windows(p, h=3, n_windows=3, step=2)
    for k, win in enumerate(wins):
        assert (win.train.lengths == 20 - 3 - (2 - k) * 2).all()
        for j, i in enumerate(win.rows):
            ds, y = p.series(i)
            n = win.train.lengths[j]
            np.testing.assert_array_equal(win.train.series(j)[1], y[:n])
            np.testing.assert_array_equal(win.actual[j], y[n : n + 3])
    assert wins[-1].actual[0, -1] == p.series(0)[1][-1]  # last window ends at the panel's end


def test_windows_skip_series_too_short() -> None:
    df = pd.concat([_frame(1, 20), _frame(1, 6).assign(unique_id="short")])
    wins = cut_windows(_panel(df), h=4, n_windows=2, min_train=2)
    assert [w.train.n_series for w in wins] == [1, 2]


# ----------------------------------------------------------------------------- combination
def test_combination_equal_is_the_mean_of_members() -> None:
    p = _panel(_frame())
    combo = Combination({"naive": Naive(), "mean": Mean()})
    out = combo.fit_predict(p, 4, (80,), EX)
    a, b = Naive().fit_predict(p, 4, (80,), EX), Mean().fit_predict(p, 4, (80,), EX)
    np.testing.assert_allclose(out.mean, (a.mean + b.mean) / 2)
    np.testing.assert_allclose(out.lo[80], (a.lo[80] + b.lo[80]) / 2)  # quantile averaging
    np.testing.assert_allclose(out.hi[80], (a.hi[80] + b.hi[80]) / 2)
    first = p.indptr[:-1]
    np.testing.assert_allclose(out.fitted[first], b.fitted[first])  # naive has no fitted there
    rest = np.setdiff1d(np.arange(len(p.y)), first)
    np.testing.assert_allclose(out.fitted[rest], (a.fitted[rest] + b.fitted[rest]) / 2)
    assert combo.weights_.shape == (3, 3) and np.allclose(combo.weights_[["naive", "mean"]], 0.5)


def test_combination_renormalises_over_failed_members() -> None:
    df = pd.concat([_frame(1, 12), _frame(1, 3).assign(unique_id="short")])
    out = Combination({"snaive": SeasonalNaive(4), "mean": Mean()}).fit_predict(
        _panel(df), 2, (), EX
    )
    short = _panel(df).series(1)[1]
    np.testing.assert_allclose(out.mean[1], short.mean())  # snaive failed: mean alone
    assert out.failures == {}


def test_combination_inverse_cv_error_weights_by_hand() -> None:
    p = _panel(_frame(2, 16))
    combo = Combination({"naive": Naive(), "mean": Mean()}, weights="inverse_cv_error",
                        n_windows=2, metric="mse")  # fmt: skip
    out = combo.fit_predict(p, 2, (), EX)
    for i in range(2):
        y = p.series(i)[1]
        mse = []
        for fc in (lambda t: np.repeat(t[-1], 2), lambda t: np.repeat(t.mean(), 2)):
            e = [y[n : n + 2] - fc(y[:n]) for n in (12, 14)]
            mse.append(np.mean([np.mean(x**2) for x in e]))
        w = (1 / np.array(mse)) / (1 / np.array(mse)).sum()
        np.testing.assert_allclose(combo.weights_.iloc[i, 1:].to_numpy(float), w)
        np.testing.assert_allclose(out.mean[i], w[0] * y[-1] + w[1] * y.mean())


def test_combination_rejects_bad_arguments() -> None:
    with pytest.raises(DataError, match="weights must be"):
        Combination({"n": Naive()}, weights="median")
    with pytest.raises(DataError, match="member 'x' is a int"):
        Combination({"x": 3})


# ----------------------------------------------------------------------------- selection
def _mase_by_hand(y: np.ndarray, fc, h: int, origins: list[int], m: int) -> float:
    out = []
    for n in origins:
        tr = y[:n]
        scale = np.mean(np.abs(tr[m:] - tr[:-m]))
        out.append(np.mean(np.abs(y[n : n + h] - fc(tr, h))) / scale)
    return float(np.mean(out))


def test_selected_picks_the_hand_computed_best_per_node() -> None:
    p = _panel(_frame(3, 24))
    sel = Selected({"naive": Naive(), "snaive": SeasonalNaive(4), "mean": Mean()},
                   n_windows=2, season_length=4)  # fmt: skip
    out = sel.fit_predict(p, 4, (80,), EX)
    fcs = {
        "naive": lambda t, h: np.repeat(t[-1], h),
        "snaive": lambda t, h: t[-4:][:h],
        "mean": lambda t, h: np.repeat(t.mean(), h),
    }
    full = {k: m.fit_predict(p, 4, (80,), EX) for k, m in sel.candidates.items()}
    for i in range(3):
        y = p.series(i)[1]
        scores = {k: _mase_by_hand(y, f, 4, [16, 20], 4) for k, f in fcs.items()}
        best = min(scores, key=scores.get)
        row = sel.choices_.iloc[i]
        assert row["model"] == best and row["group"] == "regular"
        assert np.isclose(row[f"score[{best}]"], scores[best])
        np.testing.assert_allclose(out.mean[i], full[best].mean[i])
        np.testing.assert_allclose(out.hi[80][i], full[best].hi[80][i])
        rows = slice(p.indptr[i], p.indptr[i + 1])
        np.testing.assert_allclose(out.fitted[rows], full[best].fitted[rows])


def test_selected_never_sees_the_test_period_and_is_deterministic() -> None:
    df = _frame(3, 24)
    cutoff = pd.Timestamp("2014-10-01")
    rec = Recorder(Naive())
    sel = Selected({"rec": rec, "mean": Mean()}, n_windows=2, season_length=4)
    base = forecast(df[df["ds"] <= cutoff], {"sel": sel}, h=4, freq="QS")
    assert max(d.max() for d in rec.seen) <= np.datetime64(cutoff)
    # backtest origins: 4 and 8 quarters before the cutoff, then the full training data
    lasts = sorted({pd.Timestamp(d.max()) for d in rec.seen})
    assert lasts[-1] == cutoff and lasts[0] == cutoff - pd.DateOffset(months=24)
    again = forecast(df[df["ds"] <= cutoff], {"sel": sel}, h=4, freq="QS")
    pd.testing.assert_frame_equal(base.forecasts, again.forecasts)
    changed = df.assign(y=np.where(df["ds"] > cutoff, 1e6, df["y"]))
    third = forecast(changed[changed["ds"] <= cutoff], {"sel": sel}, h=4, freq="QS")
    pd.testing.assert_frame_equal(base.forecasts, third.forecasts)


def _with_sparse(seed: int) -> Panel:
    """Two regular series ``s0``, ``s1`` and an intermittent one, ``sparse`` (about 70 % zeros)."""
    rng = np.random.default_rng(seed)
    df = _frame(2, 24)
    sparse = df[df["unique_id"] == "s0"].assign(
        unique_id="sparse", y=(rng.random(24) < 0.3) * rng.integers(1, 4, 24).astype(float)
    )
    return _panel(pd.concat([df, sparse]))


def test_selected_routes_intermittent_nodes() -> None:
    p = _with_sparse(seed=1)
    sel = Selected({"naive": Naive()}, intermittent={"mean": Mean()}, n_windows=1)
    out = sel.fit_predict(p, 2, (), EX)
    choices = sel.choices_.set_index("unique_id")
    assert choices.loc["sparse", "group"] == "intermittent"
    assert choices.loc["sparse", "model"] == "mean"
    assert (choices.loc[["s0", "s1"], "model"] == "naive").all()
    i = list(p.ids).index("sparse")
    np.testing.assert_allclose(out.mean[i], p.series(i)[1].mean())


def test_selected_rejects_bad_arguments() -> None:
    with pytest.raises(DataError, match="unknown Selected metric"):
        Selected({"n": Naive()}, metric="r2")
    with pytest.raises(DataError, match="non-empty dict"):
        Selected({})
    with pytest.raises(DataError, match="by='cv'"):
        Selected({"n": Naive()}, by="aic")


# ----------------------------------------------------------------------------- intermittent
def test_intermittent_models_match_statsforecast_with_documented_intervals() -> None:
    from statsforecast.models import CrostonOptimized

    rng = np.random.default_rng(2)
    y = (rng.random(40) < 0.35) * rng.integers(1, 5, 40).astype(float)
    df = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2000", periods=40, freq="MS"), "y": y}
    )
    p = Panel.from_long(df, "MS")
    out = IntermittentModel(CrostonOptimized()).fit_predict(p, 3, (80,), EX)
    ref = CrostonOptimized().forecast(y=y, h=3, fitted=True)
    np.testing.assert_allclose(out.mean[0], ref["mean"])
    np.testing.assert_allclose(out.fitted, ref["fitted"])
    resid = (y - ref["fitted"])[1:]
    sd = np.sqrt(np.mean(resid**2))
    np.testing.assert_allclose(out.hi[80][0] - out.mean[0], norm.ppf(0.9) * sd)
    assert set(intermittent_models()) == {"croston", "adida", "imapa", "tsb"}
    for model in intermittent_models().values():
        res = model.fit_predict(p, 3, (95,), EX)
        assert res.mean.shape == (1, 3) and np.isfinite(res.lo[95]).all()


def test_cli_names_build_the_new_models() -> None:
    from htsforecast.job import make_models

    models = make_models(("croston", "adida", "imapa", "tsb", "lgbm", "combo", "auto"), 4)
    assert isinstance(models["combo"], Combination)
    assert set(models["combo"].members) == {"ets", "arima", "theta"}
    auto = models["auto"]
    assert isinstance(auto, Selected)
    assert set(auto.intermittent) == {"croston", "adida", "imapa", "tsb", "lgbm_median"}
    assert list(auto.candidates) == ["combo"]  # regular nodes: the combination, no choice
    assert set(auto.candidates["combo"].members) == {"ets", "arima", "theta"}
    light = make_models(("auto",), 12, n_obs=10**6)["auto"]
    assert set(light.candidates["combo"].members) == {"ets", "theta"} and light.n_windows == 1


def test_selected_single_candidate_group_is_not_backtested() -> None:
    df = _frame(3, 24)
    rec = Recorder(Naive())
    sel = Selected({"rec": rec}, n_windows=3, season_length=4)
    with warnings.catch_warnings():  # no "Mean of empty slice" from the unscored candidate
        warnings.simplefilter("error", RuntimeWarning)
        out = sel.fit_predict(_panel(df), 4, (80,), EX)
    assert len(rec.seen) == 1  # the final fit only
    ref = Naive().fit_predict(_panel(df), 4, (80,), EX)
    np.testing.assert_array_equal(out.mean, ref.mean)
    assert (sel.choices_["model"] == "rec").all() and sel.choices_["score[rec]"].isna().all()


# ----------------------------------------------------------------------------- LightGBM
def test_lgbm_matches_mlforecast_and_is_deterministic() -> None:
    pytest.importorskip("mlforecast")
    from htsforecast.models import MLForecastModel

    df = _frame(4, 32)
    p = _panel(df)
    model = MLForecastModel(season_length=4, lgbm_params={"n_estimators": 20})
    out = model.fit_predict(p, 3, (80,), EX)
    again = MLForecastModel(season_length=4, lgbm_params={"n_estimators": 20}).fit_predict(
        p, 3, (80,), EX
    )
    np.testing.assert_array_equal(out.mean, again.mean)
    np.testing.assert_array_equal(out.lo[80], again.lo[80])
    ref = model._mlforecast("QS")
    ref.fit(p.to_frame())
    expect = ref.predict(3).sort_values(["unique_id", "ds"])["lgbm"].to_numpy().reshape(4, 3)
    np.testing.assert_allclose(out.mean, expect)
    assert (out.lo[80] <= out.mean).all() and (out.mean <= out.hi[80]).all()
    assert np.isfinite(out.fitted).sum() > 0.5 * len(p.y)
    first = p.indptr[:-1]
    assert np.isnan(out.fitted[first]).all()  # no feature row for the first observations


def test_lgbm_short_series_fall_back() -> None:
    pytest.importorskip("mlforecast")
    from htsforecast.models import MLForecastModel

    df = pd.concat([_frame(3, 32), _frame(1, 12).assign(unique_id="short")])
    base = forecast(df, {"lgbm": MLForecastModel(season_length=4)}, h=2, freq="QS")
    assert base.fallbacks["unique_id"].tolist() == ["short"]


def test_lgbm_cross_validation_uses_no_test_period_information() -> None:
    pytest.importorskip("mlforecast")
    from htsforecast import Hierarchy, cross_validate
    from htsforecast.models import MLForecastModel

    bottom = _frame(4, 32).assign(g=lambda d: d["unique_id"].str[-1].astype(int) % 2)
    bottom = bottom.rename(columns={"unique_id": "s"})
    hier = Hierarchy.from_formula("g / s")
    Y = hier.aggregate(bottom, freq="QS")
    last = Y["ds"].max()
    models = {"lgbm": MLForecastModel(season_length=4, lgbm_params={"n_estimators": 10})}
    a = cross_validate(Y, hier, models, None, h=2, n_windows=1, freq="QS")
    Y2 = Y.assign(y=np.where(Y["ds"] > last - pd.DateOffset(months=6), -999.0, Y["y"]))
    b = cross_validate(Y2, hier, models, None, h=2, n_windows=1, freq="QS")
    pd.testing.assert_series_equal(a.forecasts["yhat"], b.forecasts["yhat"])
    assert not a.forecasts["y"].equals(b.forecasts["y"])


# ----------------------------------------------------------------------------- conformal
def test_conformal_intervals_from_hand_computed_backtest_errors() -> None:
    from htsforecast.models import Conformal

    p = _panel(_frame(2, 20))
    out = Conformal(Naive(), n_windows=3, pooled=False).fit_predict(p, 2, (50, 80), EX)
    ref = Naive().fit_predict(p, 2, (), EX)
    np.testing.assert_allclose(out.mean, ref.mean)
    for i in range(2):
        y = p.series(i)[1]
        err = np.abs([y[n : n + 2] - y[n - 1] for n in (14, 16, 18)])  # (3 windows, h)
        srt = np.sort(err, axis=0)
        np.testing.assert_allclose(out.hi[50][i] - out.mean[i], srt[1])  # ceil(4 * .5) = 2nd
        np.testing.assert_allclose(out.mean[i] - out.lo[80][i], srt[2])  # ceil(4 * .8) > 3: max
    pooled = Conformal(Naive(), n_windows=3).fit_predict(p, 2, (50,), EX)
    y = p.series(0)[1]
    err = np.abs([y[n : n + 2] - y[n - 1] for n in (14, 16, 18)]).ravel()  # both horizons
    np.testing.assert_allclose(pooled.hi[50][0] - pooled.mean[0], np.sort(err)[3])  # 4th of 6


def test_selected_reuses_fits_of_identical_data_across_calls() -> None:
    df = _frame(3, 24)
    rec = Recorder(Naive())
    sel = Selected({"rec": rec, "mean": Mean()}, n_windows=2, season_length=4)
    early = df[df["ds"] <= df["ds"].max() - pd.DateOffset(months=12)]  # 4 quarters earlier
    first = sel.fit_predict(_panel(early), 4, (80,), EX)
    n_first = len(rec.seen)
    assert n_first == 3  # two origins and the final fit
    sel.fit_predict(_panel(df), 4, (80,), EX)
    assert len(rec.seen) - n_first == 1  # both origins are the first call's fits: only the final
    fresh = Selected({"rec": Recorder(Naive()), "mean": Mean()}, n_windows=2, season_length=4)
    np.testing.assert_array_equal(fresh.fit_predict(_panel(early), 4, (80,), EX).mean, first.mean)


def test_conformal_cv_fitted_values_are_the_backtest_forecasts() -> None:
    from htsforecast.models import Conformal

    p = _panel(_frame(2, 20))
    out = Conformal(Naive(), n_windows=2, cv_fitted=True).fit_predict(p, 3, (), EX)
    y = p.series(1)[1]
    fitted = out.fitted[p.indptr[1] : p.indptr[2]]
    assert np.isnan(fitted[:14]).all()
    np.testing.assert_allclose(fitted[14:17], y[13])  # origin after 14 obs: naive = y[13]
    np.testing.assert_allclose(fitted[17:], y[16])


def test_selected_prefer_keeps_the_preferred_within_one_standard_error() -> None:
    rng = np.random.default_rng(5)  # noisy random walks: no candidate is clearly best
    ds = pd.date_range("2010-01-01", periods=28, freq="QS")
    df = pd.concat(
        pd.DataFrame({"unique_id": f"w{i}", "ds": ds,
                      "y": 10 + 0.3 * rng.normal(0, 1, 28).cumsum() + rng.normal(0, 1, 28)})
        for i in range(6)
    )  # fmt: skip
    p = _panel(df)
    cands = {"naive": Naive(), "snaive": SeasonalNaive(4), "mean": Mean()}
    sel = Selected(cands, n_windows=3, step=2, season_length=4, prefer="naive")
    sel.fit_predict(p, 4, (), EX)
    fcs = {
        "naive": lambda t, h: np.repeat(t[-1], h),
        "snaive": lambda t, h: t[-4:][:h],
        "mean": lambda t, h: np.repeat(t.mean(), h),
    }
    kept = switched = 0
    for i in range(p.n_series):
        y = p.series(i)[1]
        per = {k: np.array([_mase_by_hand(y, f, 4, [o], 4) for o in (20, 22, 24)])
               for k, f in fcs.items()}  # fmt: skip
        best = min(per, key=lambda k: per[k].mean())
        diff = per["naive"] - per[best]
        keep = diff.mean() <= diff.std(ddof=1) / np.sqrt(3)
        row = sel.choices_.iloc[i]
        assert row["best"] == best
        assert row["model"] == ("naive" if keep else best)
        kept += bool(keep and best != "naive")
        switched += row["model"] != "naive"
    assert kept >= 1 and switched >= 1  # both branches of the rule are exercised
    with pytest.raises(DataError, match="prefer='ets' is not a candidate"):
        Selected(cands, prefer="ets")


def test_window_scales_are_the_metrics_scale_of_each_training_cut() -> None:
    from htsforecast.metrics import seasonal_naive_scale
    from htsforecast.models._backtest import window_scales

    rng = np.random.default_rng(2)
    ragged = pd.concat(
        pd.DataFrame({"unique_id": f"r{n}", "ds": pd.date_range("2000-01-01", periods=n, freq="QS"),
                      "y": rng.normal(10, 3, n).round()})
        for n in (30, 12, 7)
    )  # fmt: skip
    flat = pd.DataFrame({"unique_id": "flat", "ds": pd.date_range("2000-01-01", periods=20,
                         freq="QS"), "y": 5.0})  # fmt: skip
    p = _panel(pd.concat([ragged, flat]))
    wins = cut_windows(p, 4, 3, 2)
    for power in (1, 2):
        got = window_scales(p, wins, 4, power)
        for k, win in enumerate(wins):
            for j, row in enumerate(win.rows):
                y = win.train.series(j)[1]
                want = seasonal_naive_scale(y, 4, power) if len(y) > 4 else np.nan
                want = want if np.isfinite(want) and want > 0 else 1.0  # flat: scale 1
                assert got[row, k] == pytest.approx(want)
        short = [i for i in range(p.n_series) if i not in np.concatenate([w.rows for w in wins])]
        assert all((got[i] == 1.0).all() for i in short)


def test_selected_memoises_statsforecast_fits_per_series() -> None:
    from statsforecast.models import AutoETS

    from htsforecast.models import StatsForecastModel
    from htsforecast.models._backtest import fit_output

    p = _panel(_frame(3, 24))
    ets = StatsForecastModel(AutoETS(season_length=4))
    given: list[list[str]] = []
    inner = ets.fit_predict

    def spy(panel, h, level, executor):
        given.append(list(panel.ids))
        return inner(panel, h, level, executor)

    ets.fit_predict = spy  # type: ignore[method-assign]  # still a StatsForecastModel
    sel = Selected({"ets": ets}, n_windows=1, season_length=4)
    cache = sel._cache
    ok, full = cache.fit(ets, p, 4, (80,), EX)
    assert given == [["s0", "s1", "s2"]] and ok.all()
    ok2, part = cache.fit(ets, p.subset([2, 0]), 4, (80,), EX)  # another sub-panel, same series
    assert len(given) == 1  # nothing refitted
    ref = fit_output(StatsForecastModel(AutoETS(season_length=4)), p.subset([2, 0]), 4, (80,), EX)
    np.testing.assert_array_equal(part.mean, ref[1].mean)  # exactly a fresh fit of that panel
    np.testing.assert_array_equal(part.fitted, ref[1].fitted)
    np.testing.assert_array_equal(part.hi[80], ref[1].hi[80])
    grown = _panel(_frame(4, 24))  # one new series: only it is fitted
    cache.fit(ets, grown, 4, (80,), EX)
    assert given[1:] == [["s3"]]
    cache.fit(ets, grown, 4, (95,), EX)  # another level is another fit
    assert len(given) == 3
    cache.max_values = 1  # the oldest entries go; the newest always stays
    cache.fit(ets, p.subset([0]), 4, (50,), EX)
    assert len(cache._store) == 1


def test_auto_combines_on_regular_nodes_and_chooses_on_intermittent_ones() -> None:
    from htsforecast.models import auto_model

    p = _with_sparse(seed=3)
    auto = auto_model(4)
    out = auto.fit_predict(p, 4, (80,), EX)
    again = auto_model(4).fit_predict(p, 4, (80,), EX)
    np.testing.assert_array_equal(out.mean, again.mean)  # deterministic
    choices = auto.choices_.set_index("unique_id")
    assert (choices.loc[["s0", "s1"], "model"] == "combo").all()
    assert choices.loc["sparse", "group"] == "intermittent"
    assert choices.loc["sparse", "model"] in auto.intermittent
    regular = p.subset([0, 1])
    ref = auto.candidates["combo"].fit_predict(regular, 4, (80,), EX)
    np.testing.assert_allclose(out.mean[:2], ref.mean, rtol=1e-12)
