"""Interval calibration from CV windows (split-conformal width factors), alone and in the job."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from htsforecast import calibrate_intervals, cross_validate, interval_factors
from htsforecast.errors import DataError
from htsforecast.hierarchy import Hierarchy
from htsforecast.job import RunConfig, make_methods, make_models, run


def _cv_frame(y, yhat, half, horizon, level=80, model="m", method="bu"):
    y, yhat, half = (np.asarray(a, dtype=float) for a in (y, yhat, half))
    ids = [f"n{i}" for i in range(len(y))]
    return pd.DataFrame({"unique_id": ids, "model": model, "method": method, "yhat": yhat,
                         f"yhat_lo_{level}": yhat - half, f"yhat_hi_{level}": yhat + half,
                         "y": y, "horizon": np.asarray(horizon)})  # fmt: skip


def test_factor_is_the_conformal_rank_of_the_normalised_errors() -> None:
    # hand-worked: intervals [-1, 1] (midpoint 0, half-width 1); errors 0.5, 1.5, 2, 3 give
    # scores 0.5, 1.5, 2, 3; level 50 takes the ceil(5 * 0.5) = 3rd smallest, level 80 the 4th
    cv = _cv_frame([0.5, -1.5, 2.0, -3.0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1])
    cv["yhat_lo_50"], cv["yhat_hi_50"] = -2.0, 2.0  # half-width 2: scores 0.25, 0.75, 1, 1.5
    f = interval_factors(cv, [50, 80], pooled=False, target="coverage").set_index("level")
    assert f.loc[80, "factor"] == 3.0 and f.loc[80, "n_scores"] == 4
    assert f.loc[50, "factor"] == 1.0
    cols = ["model", "method", "horizon", "factor", "n_scores", "center", "basis"]
    assert list(f.columns) == cols
    assert set(f["center"]) == {"midpoint"} and set(f["basis"]) == {"interval"}


def test_scores_pool_the_neighbouring_steps_and_skip_zero_widths() -> None:
    # step 1: score 1; step 2: score 2; step 3: score 4 and a zero-width row (not a score)
    cv = _cv_frame([1, 2, 4, 5], [0, 0, 0, 5], [1, 1, 1, 0], [1, 2, 3, 3])
    own = interval_factors(cv, [80], pooled=False, target="coverage")
    assert own["factor"].tolist() == [1.0, 2.0, 4.0] and own["n_scores"].tolist() == [1, 1, 1]
    pooled = interval_factors(cv, [80], pooled=True, target="coverage")
    assert pooled["n_scores"].tolist() == [2, 3, 2]  # steps {1,2}, {1,2,3}, {2,3}
    assert pooled["factor"].tolist() == [2.0, 4.0, 4.0]  # max of 2 or 3 scores (few: the max)


def test_scaled_intervals_are_midpoint_plus_minus_factor_times_half_width() -> None:
    fc = pd.DataFrame({"unique_id": ["a", "a"], "ds": pd.to_datetime(["2020-04-01", "2020-01-01"]),
                       "model": "m", "method": "bu", "yhat": [2.0, 2.0],
                       "yhat_lo_80": [1.0, 1.5], "yhat_hi_80": [3.0, 2.5],
                       "yhat_lo_95": [0.5, 1.0], "yhat_hi_95": [3.5, 3.0]})  # fmt: skip
    factors = pd.DataFrame({"model": "m", "method": "bu", "level": [80, 80, 95, 95],
                            "horizon": [1, 2, 1, 2], "factor": [2.0, 3.0, 1.0, 1.0]})  # fmt: skip
    out = calibrate_intervals(fc, factors)
    # row 0 is step 2 (later date): 80 % [1, 3] * 3 -> [-1, 5]; 95 % [0.5, 3.5] stays, then
    # widened to contain the 80 % interval (nested levels)
    assert out.loc[0, ["yhat_lo_80", "yhat_hi_80"]].tolist() == [-1.0, 5.0]
    assert out.loc[0, ["yhat_lo_95", "yhat_hi_95"]].tolist() == [-1.0, 5.0]
    assert out.loc[1, ["yhat_lo_80", "yhat_hi_80"]].tolist() == [1.0, 3.0]  # step 1, factor 2
    assert out.loc[1, ["yhat_lo_95", "yhat_hi_95"]].tolist() == [1.0, 3.0]
    assert fc.loc[0, "yhat_lo_80"] == 1.0  # the input is not modified
    clipped = calibrate_intervals(fc, factors, nonnegative=True)
    assert clipped.loc[0, "yhat_lo_80"] == 0.0
    untouched = calibrate_intervals(fc, factors.assign(model="other"))
    pd.testing.assert_frame_equal(untouched, fc)
    inplace = calibrate_intervals(fc, factors, copy=False)  # the job's memory-saving path
    assert inplace is fc
    pd.testing.assert_frame_equal(inplace, out)


def test_factor_recovers_a_misstated_sd_and_covers_fresh_data() -> None:
    # intervals built for sd 1 while errors have sd 2: the factor is 2 (closed form), and the
    # scaled intervals cover ~L % of new errors from the same law (never seen by the factors)
    rng = np.random.default_rng(0)
    n, z = 20_000, norm.ppf(0.9)
    cv = _cv_frame(rng.normal(0, 2, n), np.zeros(n), np.full(n, z), np.ones(n, dtype=int))
    f = interval_factors(cv, [80], target="coverage")["factor"].iloc[0]
    assert f == pytest.approx(2.0, rel=0.03)
    fresh = rng.normal(0, 2, n)
    assert np.mean(np.abs(fresh) <= f * z) == pytest.approx(0.80, abs=0.01)
    # on the calibration scores themselves the conformal guarantee holds exactly: >= 80 %
    assert np.mean(np.abs(cv["y"]) <= f * z) >= 0.80


def test_missing_interval_columns_are_named() -> None:
    cv = _cv_frame([1.0], [0.0], [1.0], [1])
    with pytest.raises(DataError, match=r"no column\(s\) \['yhat_hi_95', 'yhat_lo_95'\]"):
        interval_factors(cv, [95])


def test_crps_factor_minimises_the_pinball_loss_hand_worked() -> None:
    # one row, error 3, 80 % interval [-1, 1] around 0: quantiles 0.1/0.5/0.9 at -c, 0, c.
    # slope of the mean pinball loss in c: (-0.9 + 0.1) / 3 below c = 3, (0.1 + 0.1) / 3 above
    cv = _cv_frame([3.0], [0.0], [1.0], [1])
    f = interval_factors(cv, [80])
    assert f["factor"].iloc[0] == pytest.approx(3.0, rel=1e-4)
    assert f["center"].iloc[0] == "point" and f["n_scores"].iloc[0] == 1
    # two rows, errors 3 and 1: unweighted the loss still falls until c = 3; with the first
    # node's scale 100 (weight 1/100) the second node decides: c = 1
    cv = _cv_frame([3.0, 1.0], [0.0, 0.0], [1.0, 1.0], [1, 1])
    assert interval_factors(cv, [80])["factor"].iloc[0] == pytest.approx(3.0, rel=1e-4)
    scaled = interval_factors(cv, [80], scale={"n0": 100.0, "n1": 1.0})
    assert scaled["factor"].iloc[0] == pytest.approx(1.0, rel=1e-4)


def test_crps_factor_recovers_a_misstated_sd_for_every_level() -> None:
    # a location-scale family with the right shape: the minimum-CRPS scale is the true one (2)
    rng = np.random.default_rng(1)
    n = 20_000
    cv = _cv_frame(rng.normal(0, 2, n), np.zeros(n), np.full(n, norm.ppf(0.9)), np.ones(n, int))
    cv["yhat_lo_95"], cv["yhat_hi_95"] = -norm.ppf(0.975), norm.ppf(0.975)
    f = interval_factors(cv, [80, 95])
    assert f["factor"].tolist() == pytest.approx([2.0, 2.0], rel=0.03)
    fc = cv.iloc[:1].assign(ds=pd.Timestamp("2020-01-01"))
    out = calibrate_intervals(fc, f)  # around the point forecast: [0 - c z, 0 + c z]
    assert out["yhat_hi_95"].iloc[0] == pytest.approx(f["factor"].iloc[1] * norm.ppf(0.975))


def test_unknown_target_is_named() -> None:
    with pytest.raises(DataError, match="target must be 'crps' or 'coverage', got 'width'"):
        interval_factors(_cv_frame([1.0], [0.0], [1.0], [1]), [80], target="width")


@pytest.fixture
def sales_csv(tmp_path):
    rng = np.random.default_rng(3)
    ds = pd.date_range("2018-01-01", periods=30, freq="MS")
    rows = []
    for g in ["a", "b", "c"]:
        y = 40 + 8 * np.sin(np.arange(30) * np.pi / 6) + rng.normal(0, 3, 30)
        rows.append(pd.DataFrame({"g": g, "ds": ds, "y": y}))
    path = tmp_path / "sales.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


def test_job_calibrates_with_the_cv_windows_of_its_training_data(sales_csv, tmp_path) -> None:
    common = dict(data=str(sales_csv), formula="g", freq="MS", h=4, models=("naive",),
                  methods=("bu", "ols"), cv_windows=2, level=(80,), n_jobs=1, plots=False,
                  nonnegative=False)  # fmt: skip
    on = run(RunConfig(out=str(tmp_path / "on"), **common), echo=lambda s: None)
    off = run(RunConfig(out=str(tmp_path / "off"), calibrate=False, **common), echo=lambda s: None)
    assert "calibration" not in off.selection
    # the factors are those of the job's own CV windows, cut from the data it was given
    hier = Hierarchy.from_formula("g")
    Y = hier.aggregate(pd.read_csv(sales_csv, parse_dates=["ds"]), freq="MS")
    cv = cross_validate(Y, hier, make_models(("naive",), 12), make_methods(("bu", "ols")),
                        h=4, n_windows=2, freq="MS", level=[80])  # fmt: skip
    x = Y.pivot(index="unique_id", columns="ds", values="y")
    scale = dict(zip(x.index, np.abs(x.to_numpy()[:, 12:] - x.to_numpy()[:, :-12]).mean(axis=1)))
    expected = interval_factors(cv.forecasts, [80], scale=scale, basis="auto")
    got = pd.DataFrame(on.selection["calibration"]["factors"])
    np.testing.assert_allclose(got["factor"], expected["factor"])
    assert got["basis"].tolist() == expected["basis"].tolist()
    pd.testing.assert_frame_equal(
        on.forecasts, calibrate_intervals(off.forecasts, expected, scale=scale)
    )
    points = ["unique_id", "ds", "model", "method", "yhat"]
    pd.testing.assert_frame_equal(on.forecasts[points], off.forecasts[points])
    saved = json.loads((tmp_path / "on" / "selection.json").read_text())
    assert len(saved["calibration"]["factors"]) == len(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_pinball_minimiser_matches_a_fine_search(seed) -> None:
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(seed)
    n = 200
    P = np.array([0.5, 0.1, 0.9, 0.025, 0.975])  # the median and the bounds of levels 80, 95
    D = np.column_stack([np.zeros(n)] + [rng.gamma(2, 1, n) * np.sign(p - 0.5) for p in P[1:]])
    D[:10] = 0.0  # rows without width never matter
    e = rng.normal(0, 1 + seed, n)
    e[:5] = 0.0
    w = rng.uniform(0.1, 2, n)
    ids = [f"n{i}" for i in range(n)]
    scale = dict(zip(ids, 1 / w))

    def factor(err):  # the production path: one horizon step, yhat = 0, weights 1 / scale
        cv = pd.DataFrame({"unique_id": ids, "model": "m", "method": "bu", "horizon": 1,
                           "y": err, "yhat": 0.0, "yhat_lo_80": D[:, 1], "yhat_hi_80": D[:, 2],
                           "yhat_lo_95": D[:, 3], "yhat_hi_95": D[:, 4]})  # fmt: skip
        return interval_factors(cv, [80, 95], pooled=False, scale=scale)["factor"].iloc[0]

    def loss(c):
        r = e[:, None] - c * D
        return float(w @ np.maximum(P * r, (P - 1) * r).mean(axis=1))

    c = factor(e)
    ref = minimize_scalar(loss, bounds=(1 / 50, 50), method="bounded", options={"xatol": 1e-10}).x
    assert loss(c) <= loss(ref) + 1e-12  # the exact minimiser is at least as good
    assert loss(c) <= min(loss(x) for x in np.linspace(1 / 50, 50, 20001)) + 1e-12
    # (losses are compared: a piecewise-linear loss may be flat over an interval of minimisers)
    # the clip: errors far larger than any width push the factor to the cap of 50
    assert factor(1e6 * np.sign(e + 1e-9)) == 50.0
    assert factor(np.zeros(n)) == pytest.approx(1 / 50)


def test_scale_basis_factor_hand_worked() -> None:
    # one row, error 3, node scale 2: the 80 % quantiles are 0 -/+ c * 2 * z (z = z_0.9).
    # Weighted by 1 / 2, the loss falls (slope (-0.9 + 0.1) z) until the upper quantile reaches
    # the error, c * 2 * z = 3, then rises (slope 0.2 z): c = 1.5 / z, whatever the width of
    # the method's own interval (here 1, a factor of 3 on the interval basis)
    z = norm.ppf(0.9)
    cv = _cv_frame([3.0], [0.0], [1.0], [1])
    f = interval_factors(cv, [80], scale={"n0": 2.0}, basis="scale")
    assert f["factor"].iloc[0] == pytest.approx(1.5 / z, rel=1e-9)
    assert f["basis"].iloc[0] == "scale" and f["center"].iloc[0] == "point"
    own = interval_factors(cv, [80], scale={"n0": 2.0}, basis="interval")
    assert own["factor"].iloc[0] == pytest.approx(3.0, rel=1e-9)
    # both put the upper bound on the error, so both reach the same (minimal) loss: a tie
    # keeps the method's own interval
    assert interval_factors(cv, [80], scale={"n0": 2.0}, basis="auto")["basis"].iloc[0] == (
        "interval"
    )


def _two_level_panel(rng, n, own_half):
    """Top nodes t0..t9 (sd 1) and bottom nodes b0..b39 (sd 4), errors N(0, (1.5 sd)^2); the
    method's 80 % half-widths ``own_half(sd)``; the node scales are the sds."""
    sd = np.r_[np.full(10, 1.0), np.full(40, 4.0)]
    ids = np.r_[[f"t{i}" for i in range(10)], [f"b{i}" for i in range(40)]]
    node = rng.integers(0, 50, n)
    cv = _cv_frame(rng.normal(0, 1.5 * sd[node]), np.zeros(n), own_half(sd[node]), np.ones(n, int))
    cv["unique_id"] = ids[node]
    return cv, dict(zip(ids, sd)), sd[node]


def test_auto_basis_recovers_the_factor_where_levels_need_different_ones() -> None:
    # top-down-like widths: the same half-width z at every node, right (x 1.5) for the top
    # nodes, 6 x too narrow for the bottom ones; no one factor of the method's own widths
    # fits both levels, the node scales do: factor 1.5 (Gaussian errors: the minimum-CRPS scale
    # is the true one), and fresh errors are covered 80 % at each level
    rng = np.random.default_rng(5)
    z = norm.ppf(0.9)
    cv, scale, _ = _two_level_panel(rng, 40_000, lambda s: np.full_like(s, z))
    f = interval_factors(cv, [80], scale=scale, basis="auto")
    assert f["basis"].iloc[0] == "scale"
    assert f["factor"].iloc[0] == pytest.approx(1.5, rel=0.03)
    # the next forecast of every node, and its coverage of N(0, (1.5 sd)^2) in closed form
    nxt = cv.drop_duplicates("unique_id").assign(ds=pd.Timestamp("2020-01-01"))
    true_sd = 1.5 * nxt["unique_id"].map(scale).to_numpy()

    def cover(out):
        return 2 * norm.cdf(out["yhat_hi_80"].to_numpy() / true_sd) - 1

    top = nxt["unique_id"].str.startswith("t").to_numpy()
    got = cover(calibrate_intervals(nxt, f, scale=scale))
    assert got[top] == pytest.approx(0.80, abs=0.01) and got[~top] == pytest.approx(0.80, abs=0.01)
    own = cover(calibrate_intervals(nxt, interval_factors(cv, [80], scale=scale)))
    assert own[top].min() - own[~top].max() > 0.3  # why: one factor for two levels


def test_auto_basis_keeps_the_method_widths_when_they_are_right() -> None:
    # the method's intervals have each node's true shape; the scales are off by a random
    # factor per node (a poor proxy): the method's own widths win, factor 1.5
    rng = np.random.default_rng(6)
    cv, scale, _ = _two_level_panel(rng, 40_000, lambda s: norm.ppf(0.9) * s)
    noisy = {k: v * np.exp(rng.normal(0, 0.5)) for k, v in scale.items()}
    f = interval_factors(cv, [80], scale=noisy, basis="auto")
    assert f["basis"].iloc[0] == "interval"
    assert f["factor"].iloc[0] == pytest.approx(1.5, rel=0.03)


def test_scale_basis_intervals_and_stored_table_round_trip() -> None:
    fc = pd.DataFrame({"unique_id": ["a", "a", "b"], "model": "m", "method": "bu",
                       "ds": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-01-01"]),
                       "yhat": [10.0, 10.0, 5.0], "yhat_lo_80": [9.0, 8.0, 4.0],
                       "yhat_hi_80": [11.0, 12.0, 6.0]})  # fmt: skip
    factors = pd.DataFrame({"model": "m", "method": "bu", "level": 80, "horizon": [1, 2],
                            "factor": [1.5, 2.0], "n_scores": 9, "center": "point",
                            "basis": "scale"})  # fmt: skip
    z = norm.ppf(0.9)
    out = calibrate_intervals(fc, factors, scale={"a": 2.0})  # "b" has no scale: kept as is
    assert out["yhat_lo_80"].tolist() == pytest.approx([10 - 3 * z, 10 - 4 * z, 4.0])
    assert out["yhat_hi_80"].tolist() == pytest.approx([10 + 3 * z, 10 + 4 * z, 6.0])
    # what htsforecast predict reads back from selection.json gives the same intervals
    saved = json.loads(json.dumps({"factors": factors.to_dict(orient="records"),
                                   "scale": {"a": 2.0}}))  # fmt: skip
    again = calibrate_intervals(fc, pd.DataFrame(saved["factors"]), scale=saved["scale"])
    pd.testing.assert_frame_equal(again, out)
    with pytest.raises(DataError, match=r"\['m/bu'\] are on the 'scale' basis and need the node"):
        calibrate_intervals(fc, factors)
    # a table stored before the basis column existed is on the interval basis (no scale needed)
    old = calibrate_intervals(fc, factors.drop(columns="basis"))
    assert old["yhat_lo_80"].tolist() == pytest.approx([10 - 1.5, 10 - 4.0, 5 - 1.5])


def test_unknown_or_unusable_basis_is_named() -> None:
    cv = _cv_frame([1.0], [0.0], [1.0], [1])
    with pytest.raises(DataError, match="basis must be 'interval', 'scale' or 'auto', got 'x'"):
        interval_factors(cv, [80], basis="x")
    with pytest.raises(DataError, match="basis='scale' needs target='crps' and the node scales"):
        interval_factors(cv, [80], basis="scale")


def test_predict_reapplies_the_run_calibration(sales_csv, tmp_path) -> None:
    from htsforecast.job import predict

    common = dict(data=str(sales_csv), formula="g", freq="MS", h=4, models=("naive",),
                  methods=("bu", "ols"), cv_windows=2, level=(80, 95), n_jobs=1, plots=False,
                  nonnegative=False)  # fmt: skip
    res = run(RunConfig(out=str(tmp_path / "o"), save_model=str(tmp_path / "m"), **common),
              echo=lambda s: None)  # fmt: skip
    cal = res.selection["calibration"]
    assert ("scale" in cal) == ("scale" in {r["basis"] for r in cal["factors"]})
    again = predict(str(tmp_path / "m"), str(tmp_path / "p"), echo=lambda s: None)
    pd.testing.assert_frame_equal(again.forecasts.reset_index(drop=True),
                                  res.forecasts.reset_index(drop=True))  # fmt: skip


def test_predict_reapplies_scale_basis_factors_from_selection_json(sales_csv, tmp_path, monkeypatch):
    # force the scale basis in the job (its "auto" choice keeps the own widths on this data):
    # the node scales must travel in selection.json so predict rebuilds the same intervals
    import htsforecast._calibration as cal_mod
    from htsforecast.job import predict

    fit = cal_mod.interval_factors
    monkeypatch.setattr(cal_mod, "interval_factors", lambda *a, **k: fit(*a, **{**k, "basis": "scale"}))
    common = dict(data=str(sales_csv), formula="g", freq="MS", h=4, models=("naive",),
                  methods=("bu", "ols"), cv_windows=2, level=(80, 95), n_jobs=1, plots=False,
                  nonnegative=False)  # fmt: skip
    res = run(RunConfig(out=str(tmp_path / "o"), save_model=str(tmp_path / "m"), **common),
              echo=lambda s: None)  # fmt: skip
    saved = json.loads((tmp_path / "o" / "selection.json").read_text())["calibration"]
    assert {r["basis"] for r in saved["factors"]} == {"scale"}
    assert sorted(saved["scale"]) == sorted(res.forecasts["unique_id"].unique())
    again = predict(str(tmp_path / "m"), str(tmp_path / "p"), echo=lambda s: None)
    pd.testing.assert_frame_equal(again.forecasts.reset_index(drop=True),
                                  res.forecasts.reset_index(drop=True))  # fmt: skip
    off = run(RunConfig(out=str(tmp_path / "off"), calibrate=False, **common), echo=lambda s: None)
    assert not np.allclose(off.forecasts["yhat_hi_80"], res.forecasts["yhat_hi_80"])
