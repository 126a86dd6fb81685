"""Exogenous regressors: aggregation rules, level covariates, future values, models, holidays."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from htsforecast import DataError, Hierarchy, LevelCovariate
from htsforecast._exog import ExogIgnoredWarning

JAN, FEB = pd.Timestamp("2020-01-01"), pd.Timestamp("2020-02-01")


def small() -> pd.DataFrame:
    """state / store: A has a1, a2; B has b1 (whose sales are zero in January)."""
    return pd.DataFrame(
        {
            "state": ["A", "A", "B"] * 2,
            "store": ["a1", "a2", "b1"] * 2,
            "ds": [JAN] * 3 + [FEB] * 3,
            "y": [1.0, 3.0, 0.0, 2.0, 2.0, 5.0],
            "price": [10.0, 20.0, 30.0, 11.0, 21.0, 31.0],
            "promo": [1, 0, 1, 0, 0, 1],
            "flag": [True, True, True, False, False, False],
        }
    )


def temps() -> pd.DataFrame:
    return pd.DataFrame(
        {"state": ["A", "B", "A", "B"], "ds": [JAN, JAN, FEB, FEB], "temp": [1.0, 5.0, 2.0, 6.0]}
    )


def at(Y: pd.DataFrame, node: str, ds: pd.Timestamp, col: str) -> float:
    row = Y[(Y["unique_id"] == node) & (Y["ds"] == ds)]
    assert len(row) == 1
    return float(row[col].iloc[0])


# ----------------------------------------------------------------------------- rules by hand
def test_each_rule_by_hand():
    rules = {"p_sum": "sum", "p_mean": "mean", "p_min": "min", "p_max": "max", "price": "wmean"}
    df = small().assign(p_sum=lambda d: d["price"], p_mean=lambda d: d["price"],
                        p_min=lambda d: d["price"], p_max=lambda d: d["price"])  # fmt: skip
    Y = Hierarchy.from_formula("state / store").aggregate(
        df, freq="MS", exog={**rules, "promo": "sum", "flag": "first"}
    )
    assert list(Y.columns) == ["unique_id", "ds", "y", *rules, "promo", "flag"]
    # total in January: prices 10, 20, 30 with sales 1, 3, 0
    assert at(Y, "total", JAN, "p_sum") == 60.0
    assert at(Y, "total", JAN, "p_mean") == 20.0
    assert at(Y, "total", JAN, "p_min") == 10.0
    assert at(Y, "total", JAN, "p_max") == 30.0
    assert at(Y, "total", JAN, "price") == pytest.approx((1 * 10 + 3 * 20 + 0 * 30) / 4)
    assert at(Y, "total", FEB, "price") == pytest.approx((2 * 11 + 2 * 21 + 5 * 31) / 9)
    assert at(Y, "state=A", FEB, "price") == pytest.approx((2 * 11 + 2 * 21) / 4)
    # B's only store sold nothing in January: zero weights fall back to the unweighted mean
    assert at(Y, "state=B", JAN, "price") == 30.0
    assert at(Y, "total", JAN, "promo") == 2.0 and at(Y, "state=A", FEB, "promo") == 0.0
    assert at(Y, "total", JAN, "flag") == 1.0 and at(Y, "total", FEB, "flag") == 0.0
    # bottom nodes keep their own values under every rule; y unchanged by exog
    bottom = Y[Y["unique_id"].str.contains("store=")].sort_values(["ds", "unique_id"])
    for col in ["p_sum", "p_mean", "p_min", "p_max", "price"]:
        np.testing.assert_array_equal(bottom[col].to_numpy(), df["price"].to_numpy())
    plain = Hierarchy.from_formula("state / store").aggregate(df, freq="MS")
    np.testing.assert_array_equal(Y["y"].to_numpy(), plain["y"].to_numpy())


def test_wmean_zero_weights_everywhere_is_the_mean():
    df = small().assign(y=0.0)
    Y = Hierarchy.from_formula("state / store").aggregate(df, exog={"price": "wmean"})
    assert at(Y, "total", JAN, "price") == 20.0


def test_level_covariate_attaches_inside_and_aggregates_above():
    hier = Hierarchy.from_formula("(state / store) * channel")
    df = pd.concat([small().assign(channel="web"), small().assign(channel="shop", y=1.0)])
    for rule, total_jan in [("mean", 3.0), ("sum", 6.0), ("max", 5.0), ("min", 1.0)]:
        Y = hier.aggregate(df, exog={"temp": LevelCovariate(temps(), on="state", rule=rule)})
        # every node inside one state gets that state's value, whatever the rule
        for node in ["state=A", "state=A/store=a2", "state=A/channel=web",
                     "state=A/store=a1/channel=shop"]:  # fmt: skip
            assert at(Y, node, JAN, "temp") == 1.0 and at(Y, node, FEB, "temp") == 2.0
        assert at(Y, "state=B/store=b1/channel=web", FEB, "temp") == 6.0
        # nodes spanning both states: the rule over the two states, each counted once
        assert at(Y, "total", JAN, "temp") == total_jan
        assert at(Y, "channel=web", JAN, "temp") == total_jan
    Y = hier.aggregate(df, exog={"temp": LevelCovariate(temps(), on="state", rule=None)})
    assert np.isnan(at(Y, "total", JAN, "temp")) and np.isnan(at(Y, "channel=web", FEB, "temp"))
    assert at(Y, "state=B/channel=shop", JAN, "temp") == 5.0
    # wmean: each state weighted by the node's target inside it (Feb web: A 4, B 5)
    Y = hier.aggregate(df, exog={"temp": LevelCovariate(temps(), on="state", rule="wmean")})
    assert at(Y, "channel=web", FEB, "temp") == pytest.approx((4 * 2 + 5 * 6) / 9)


def test_future_frame_without_target():
    hier = Hierarchy.from_formula("state / store")
    hier.aggregate(small(), exog={"price": "wmean"})
    fut = small().drop(columns="y").assign(ds=lambda d: d["ds"] + pd.DateOffset(months=2))
    X = hier.aggregate(fut, target_col=None, freq="MS", exog={"price": "wmean", "promo": "sum"})
    assert list(X.columns) == ["unique_id", "ds", "price", "promo"]
    # weights: each store's mean sales over the history (1.5, 2.5, 2.5)
    assert at(X, "total", pd.Timestamp("2020-03-01"), "price") == pytest.approx(
        (1.5 * 10 + 2.5 * 20 + 2.5 * 30) / 6.5
    )
    assert at(X, "total", pd.Timestamp("2020-04-01"), "promo") == 1.0


# ----------------------------------------------------------------------------- bad input
def _agg(df=None, **kw):
    return Hierarchy.from_formula("state / store").aggregate(small() if df is None else df, **kw)


@pytest.mark.parametrize(
    "exog, match",
    [
        (["price"], r"must map each regressor column to a rule.*'price'"),
        ({"price": None}, r"exog column 'price' has no aggregation rule"),
        ({"price": "median"}, r"exog column 'price': unknown rule 'median'"),
        ({"cost": "sum"}, r"missing column\(s\) cost"),
        ({"store": "sum"}, r"exog column 'store' clashes"),
        ({"flag2": "first"}, r"'flag2' uses rule 'first'.*state=A @ 2020-01-01"),
        ({"temp": LevelCovariate(temps(), on="region")}, r"'temp'.*unknown: 'region'"),
        (
            {"temp": LevelCovariate(temps().iloc[:3], on="state")},
            r"'temp'.*no value for 1 \(key, date\).*state=B @ 2020-02-01",
        ),
        (
            {"temp": LevelCovariate(pd.concat([temps(), temps()]), on="state")},
            r"'temp'.*duplicated \(state, ds\)",
        ),
        ({"temp": LevelCovariate(temps(), on="state", rule="avg")}, r"'temp': unknown rule"),
    ],
)
def test_bad_exog_specs(exog, match):
    df = small().assign(flag2=[1, 2, 1, 0, 0, 0])
    with pytest.raises(DataError, match=match):
        _agg(df, exog=exog)


def test_non_numeric_and_nan_regressors_name_the_column():
    with pytest.raises(DataError, match=r"exog column 'label'.*must be numeric, got dtype object"):
        _agg(small().assign(label="x"), exog={"label": "max"})
    with pytest.raises(
        DataError, match=r"exog column 'price'.*1 NaN/inf value\(s\), at row\(s\) 4"
    ):
        _agg(small().assign(price=[1, 2, 3, 4, np.nan, 6]), exog={"price": "mean"})
    bad = temps().assign(temp=[1.0, np.inf, 2.0, 3.0])
    with pytest.raises(DataError, match=r"exog column 'temp' \(LevelCovariate.*NaN/inf"):
        _agg(exog={"temp": LevelCovariate(bad, on="state")})


def test_wmean_errors():
    with pytest.raises(DataError, match=r"'wmean' weights by the target, which is negative in "
                                        r"series state=A/store=a2"):  # fmt: skip
        _agg(small().assign(y=[1, -3, 0, 2, 2, 5]), exog={"price": "wmean"})
    fresh = Hierarchy.from_formula("state / store")
    fresh.aggregate(small())  # history without exog: no weights kept
    with pytest.raises(DataError, match=r"'price'.*aggregate the history with this same"):
        fresh.aggregate(small().drop(columns="y"), target_col=None, exog={"price": "wmean"})


def test_missing_regressor_cells_and_future_rows():
    gap = small().drop(index=[4])  # state=A/store=a2 has no February row
    with pytest.raises(DataError, match=r"'price' has no value in 1 .*state=A/store=a2 @ 2020-02"):
        _agg(gap, fill="zero", exog={"price": "mean"})
    hier = Hierarchy.from_formula("state / store")
    hier.aggregate(small())
    with pytest.raises(DataError, match=r"state=A/store=a2 @ 2020-02-01"):
        hier.aggregate(gap.drop(columns="y"), target_col=None, exog={"price": "mean"})
    with pytest.raises(DataError, match=r"target_col=None aggregates regressors only"):
        hier.aggregate(small(), target_col=None)


# ----------------------------------------------------------------------------- forecasting
H = 13
FAST_ARIMA = dict(season_length=1, max_p=1, max_q=1, max_d=1)


@pytest.fixture(scope="module")
def promo_setup():
    """Tiny simulated panel (2 states x 2 stores, 104 + 13 weeks): promotions and holidays."""
    from htsforecast.calendar import CountryHolidays
    from htsforecast.datasets import simulate_promotions

    sim = simulate_promotions(n_states=2, stores_per_state=2, n_weeks=104 + H, seed=0)
    cut = np.sort(sim.data["ds"].unique())[-H]
    hist, fut = sim.data[sim.data["ds"] < cut], sim.data[sim.data["ds"] >= cut]
    exog = {"promo": "sum", "holiday": CountryHolidays("US", subdivision_col="state",
                                                       rule="share")}  # fmt: skip
    hier = Hierarchy.from_formula(sim.formula)
    Y = hier.aggregate(hist, freq=sim.freq, exog=exog)
    X = hier.aggregate(fut.drop(columns="y"), freq=sim.freq, exog=exog, target_col=None)
    actual = hier.aggregate(fut, freq=sim.freq)
    return hier, Y, X, actual, sim


def _rmse(fc: pd.DataFrame, actual: pd.DataFrame) -> tuple[float, float]:
    """Mean RMSE over the bottom nodes, RMSE at the total."""
    m = fc.merge(actual, on=["unique_id", "ds"])
    r = np.sqrt(((m["yhat"] - m["y"]) ** 2).groupby(m["unique_id"]).mean())
    return float(r[r.index.str.contains("store=")].mean()), float(r["total"])


def test_autoarima_with_exog_equals_statsforecast_and_recovers_effects(promo_setup):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA

    from htsforecast import forecast
    from htsforecast.models import StatsForecastModel

    hier, Y, X, actual, sim = promo_setup
    model = StatsForecastModel(AutoARIMA(**FAST_ARIMA))
    ours = forecast(Y, {"arima": model}, h=H, freq=sim.freq, level=[80], X_future=X).forecasts
    ref = StatsForecast(models=[AutoARIMA(**FAST_ARIMA)], freq=sim.freq).forecast(
        df=Y, h=H, X_df=X, level=[80]
    )
    m = ours.merge(ref, on=["unique_id", "ds"])
    for node in ["total", "state=CA/store=CA-1"]:
        part = m[m["unique_id"] == node]
        assert len(part) == H
        np.testing.assert_allclose(part["yhat"], part["AutoARIMA"], rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(part["yhat_lo_80"], part["AutoARIMA-lo-80"], rtol=1e-8)
    without = forecast(Y[["unique_id", "ds", "y"]], {"arima": model}, h=H, freq=sim.freq)
    with_b, with_t = _rmse(ours, actual)
    wo_b, wo_t = _rmse(without.forecasts, actual)
    assert with_b <= 0.7 * wo_b and with_t <= 0.7 * wo_t, (with_b, wo_b, with_t, wo_t)


def test_prophet_with_regressors_recovers_effects(promo_setup):
    from htsforecast import forecast
    from htsforecast.models import ProphetModel

    hier, Y, X, actual, sim = promo_setup
    model = ProphetModel(weekly_seasonality=False, daily_seasonality=False, yearly_seasonality=4)
    with_x = forecast(Y, {"p": model}, h=H, freq=sim.freq, X_future=X).forecasts
    without = forecast(Y[["unique_id", "ds", "y"]], {"p": model}, h=H, freq=sim.freq).forecasts
    with_b, with_t = _rmse(with_x, actual)
    wo_b, wo_t = _rmse(without, actual)
    assert with_b <= 0.7 * wo_b and with_t <= 0.7 * wo_t, (with_b, wo_b, with_t, wo_t)


def _monthly():
    """state / store monthly, 24 + 3 months, promotions and a state temperature."""
    rng = np.random.default_rng(3)
    ds = pd.date_range("2020-01-01", periods=27, freq="MS")
    rows = []
    for store in ["A/a1", "A/a2", "B/b1"]:
        state, name = store.split("/")
        promo = (rng.random(27) < 0.3).astype(float)
        rows.append(pd.DataFrame({"state": state, "store": name, "ds": ds, "promo": promo,
                                  "y": 20 + 10 * promo + rng.normal(0, 1, 27)}))  # fmt: skip
    df = pd.concat(rows, ignore_index=True)
    temp = pd.DataFrame({"state": np.repeat(["A", "B"], 27), "ds": np.tile(ds, 2),
                         "temp": rng.normal(10, 3, 54)})  # fmt: skip
    hier = Hierarchy.from_formula("state / store")
    exog = {"promo": "sum", "temp": LevelCovariate(temp, on="state", rule=None)}
    past = df["ds"] < ds[24]
    Y = hier.aggregate(df[past], exog=exog)
    X = hier.aggregate(df[~past].drop(columns="y"), exog=exog, target_col=None)
    return hier, Y, X


def test_notice_names_models_that_ignore_regressors():
    from htsforecast import forecast
    from htsforecast._exog import ExogIgnoredWarning
    from htsforecast.models import Naive, SeasonalNaive

    _, Y, X = _monthly()
    with pytest.warns(ExogIgnoredWarning) as rec:
        base = forecast(Y, {"naive": Naive(), "snaive": SeasonalNaive(12)}, h=3, freq="MS",
                        X_future=X)  # fmt: skip
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "'naive'" in msg and "'snaive'" in msg and "'promo', 'temp'" in msg
    plain = forecast(Y[["unique_id", "ds", "y"]], {"naive": Naive()}, h=3, freq="MS")
    np.testing.assert_array_equal(
        base.forecasts.query("model == 'naive'")["yhat"], plain.forecasts["yhat"]
    )


def test_nodes_without_a_level_covariate_fit_without_it():
    """temp has rule=None: total uses promo only, the states and stores promo and temp."""
    from statsforecast import StatsForecast
    from statsforecast.models import ARIMA

    from htsforecast import forecast
    from htsforecast.models import StatsForecastModel

    _, Y, X = _monthly()
    assert Y.loc[Y["unique_id"] == "total", "temp"].isna().all()
    arima = ARIMA(order=(1, 0, 0))
    ours = forecast(Y, {"a": StatsForecastModel(arima)}, h=3, freq="MS", X_future=X).forecasts
    for node, cols in [("total", ["promo"]), ("state=A/store=a2", ["promo", "temp"])]:
        df = Y.loc[Y["unique_id"] == node, ["unique_id", "ds", "y", *cols]]
        xf = X.loc[X["unique_id"] == node, ["unique_id", "ds", *cols]]
        ref = StatsForecast(models=[ARIMA(order=(1, 0, 0))], freq="MS").forecast(
            df=df, h=3, X_df=xf
        )
        got = ours.loc[ours["unique_id"] == node, "yhat"].to_numpy()
        np.testing.assert_allclose(got, ref["ARIMA"].to_numpy(), rtol=1e-10)


def test_future_regressor_errors_name_nodes_and_dates():
    from htsforecast import forecast
    from htsforecast.models import Naive

    _, Y, X = _monthly()
    fc = {"naive": Naive()}

    def run(Yx=Y, Xf=X):
        return forecast(Yx, fc, h=3, freq="MS", X_future=Xf)

    drop = X.index[(X["unique_id"] == "state=B") & (X["ds"] == "2022-02-01")]
    with pytest.raises(DataError, match=r"X_future has no row for 1 .*state=B @ 2022-02-01"):
        run(Xf=X.drop(index=drop))
    nan = X.assign(promo=np.where(X["unique_id"] == "total", np.nan, X["promo"]))
    with pytest.raises(
        DataError, match=r"X_future column 'promo' is NaN at 3 .*total @ 2022-01-01"
    ):
        run(Xf=nan)
    with pytest.raises(DataError, match=r"X_future has 1 duplicated .*total @ 2022-01-01"):
        run(Xf=pd.concat([X, X.iloc[:1]]))
    with pytest.raises(DataError, match=r"Y \(the regressors named in X_future\) is missing "
                                        r"column\(s\) price"):  # fmt: skip
        run(Xf=X.assign(price=1.0))
    with pytest.raises(DataError, match=r"X_future column 'promo' must be numeric"):
        run(Xf=X.assign(promo="yes"))
    hole = Y.copy()
    hole.loc[(hole["unique_id"] == "state=A") & (hole["ds"] == "2020-05-01"), "promo"] = np.nan
    with pytest.raises(DataError, match=r"'promo' of Y is NaN at 1 .*state=A @ 2020-05-01"):
        run(Yx=hole)
    with pytest.raises(DataError, match=r"X_future has no regressor columns"):
        run(Xf=X[["unique_id", "ds"]])


def test_cross_validation_uses_each_windows_actual_regressors():
    from statsforecast.models import ARIMA

    from htsforecast import cross_validate
    from htsforecast.models import StatsForecastModel

    _, Y, _ = _monthly()
    Y = Y.drop(columns="temp")
    model = {"a": StatsForecastModel(ARIMA(order=(0, 0, 0), include_mean=True))}
    cv = cross_validate(Y, _monthly()[0], model, None, h=3, n_windows=2, freq="MS",
                        exog=["promo"])  # fmt: skip
    fc = cv.forecasts
    # ARIMA(0,0,0) with a regressor: yhat = mean + beta * promo; with promo of the test window
    for _, part in fc[fc["unique_id"] == "state=A/store=a1"].groupby("cutoff"):
        promo = (
            Y.set_index(["unique_id", "ds"])
            .loc[[("state=A/store=a1", d) for d in part["ds"]], "promo"]
            .to_numpy()
        )
        yhat = part["yhat"].to_numpy()
        if promo.min() != promo.max():
            hi, lo = yhat[promo == 1].mean(), yhat[promo == 0].mean()
            assert hi - lo == pytest.approx(10, abs=2.5)
    no_x = cross_validate(Y, _monthly()[0], model, None, h=3, n_windows=2, freq="MS")
    rmse = cv.table.query("metric == 'rmse' and level == 'all'")["value"].iloc[0]
    rmse_no = no_x.table.query("metric == 'rmse' and level == 'all'")["value"].iloc[0]
    assert rmse < 0.7 * rmse_no


# ----------------------------------------------------------------------------- holidays
def _stores_daily():
    ds = pd.date_range("2020-02-10", "2020-04-05", freq="D")
    stores = [("CA", "CA1"), ("CA", "CA2"), ("TX", "TX1")]
    return pd.concat(
        [pd.DataFrame({"state": s, "store": k, "ds": ds, "y": 1.0}) for s, k in stores]
    )


def test_country_holidays_by_subdivision_weekly():
    from htsforecast.calendar import CountryHolidays

    df = _stores_daily().assign(ds=lambda d: d["ds"] + pd.offsets.Week(weekday=6))
    df = df.drop_duplicates(["store", "ds"])
    hier = Hierarchy.from_formula("state / store")
    exog = {"hol": CountryHolidays("US", subdivision_col="state"),
            "share": CountryHolidays("US", subdivision_col="state", rule="share")}  # fmt: skip
    Y = hier.aggregate(df, freq="W-SUN", exog=exog)
    tx_day, ca_day = pd.Timestamp("2020-03-08"), pd.Timestamp("2020-02-16")
    # Texas Independence Day (Mon 2 March 2020) is in the week ending Sunday 8 March;
    # Susan B. Anthony Day (Sat 15 February, California) in the week ending 16 February.
    assert at(Y, "state=TX/store=TX1", tx_day, "hol") == 1.0
    assert at(Y, "state=CA/store=CA1", tx_day, "hol") == 0.0
    assert at(Y, "state=CA", ca_day, "hol") == 1.0 and at(Y, "state=TX", ca_day, "hol") == 0.0
    assert at(Y, "total", tx_day, "hol") == 1.0  # max: a holiday somewhere below
    assert at(Y, "total", tx_day, "share") == pytest.approx(1 / 3)  # 1 of 3 stores
    assert at(Y, "total", ca_day, "share") == pytest.approx(2 / 3)
    assert Y.loc[Y["ds"] == pd.Timestamp("2020-03-22"), "hol"].eq(0).all()


def test_country_holidays_daily_counts_and_prophet_holidays():
    from htsforecast.calendar import CountryHolidays

    cal = CountryHolidays("US", count=True)
    month = pd.date_range("2020-11-01", periods=2, freq="MS")
    np.testing.assert_array_equal(cal.indicator(month), [2.0, 1.0])  # Veterans + Thanksgiving
    only = CountryHolidays("US", names=["Thanksgiving"])
    np.testing.assert_array_equal(only.indicator(month), [1.0, 0.0])
    days = pd.date_range("2020-03-30", periods=3, freq="D")
    np.testing.assert_array_equal(CountryHolidays("US").indicator(days, "CA"), [0, 1, 0])
    hier = Hierarchy.from_formula("state / store")
    hier.aggregate(_stores_daily())
    per_node = CountryHolidays("US", subdivision_col="state").prophet_per_node(hier, [2020])
    ca = per_node["state=CA/store=CA2"]["holidays"]
    assert "Cesar Chavez Day" in set(ca["holiday"])
    assert "Cesar Chavez Day" not in set(per_node["total"]["holidays"]["holiday"])
    assert list(ca.columns) == ["ds", "holiday"]


def test_country_holidays_errors():
    from htsforecast.calendar import CountryHolidays

    hier = Hierarchy.from_formula("state / store")
    df = _stores_daily()
    with pytest.raises(DataError, match=r"CountryHolidays: .*ZZ"):
        hier.aggregate(df, freq="D", exog={"h": CountryHolidays("ZZ")})
    bad = df.assign(state=df["state"].replace({"TX": "Tex"}))
    with pytest.raises(DataError, match=r"does not have subdivision Tex.*key column 'state'"):
        Hierarchy.from_formula("state / store").aggregate(
            bad, freq="D", exog={"h": CountryHolidays("US", subdivision_col="state")}
        )
    with pytest.raises(DataError, match=r"subdivision_col 'region' is not a key column"):
        hier.aggregate(df, freq="D", exog={"h": CountryHolidays("US", subdivision_col="region")})
    with pytest.raises(DataError, match=r"CountryHolidays rule must be one of"):
        CountryHolidays("US", rule="sum")
    irregular = df[df["ds"].isin(pd.to_datetime(["2020-03-01", "2020-03-05"]))]
    with pytest.raises(DataError, match=r"'h' needs the time grid's frequency"):
        Hierarchy.from_formula("state / store").aggregate(
            irregular, exog={"h": CountryHolidays("US")}
        )


def test_prophet_regressor_prior_scale_and_per_node_override():
    from htsforecast import forecast
    from htsforecast.models import ProphetModel

    _, Y, X = _monthly()
    Y, X = Y.drop(columns="temp"), X.drop(columns="temp")
    node = "state=A/store=a1"
    kw = dict(weekly_seasonality=False, daily_seasonality=False, yearly_seasonality=False)

    X = X.assign(promo=np.tile([0.0, 1.0, 0.0], len(X) // 3))  # a promotion in month 2

    def promo_effect(model):
        fc = forecast(Y, {"p": model}, h=3, freq="MS", X_future=X).forecasts
        f = fc.set_index("unique_id")["yhat"]
        return {uid: f[uid].iloc[1] - (f[uid].iloc[0] + f[uid].iloc[2]) / 2
                for uid in ["total", node]}  # fmt: skip

    free = promo_effect(ProphetModel(**kw))
    tight = promo_effect(ProphetModel(regressor_prior_scale=1e-4, **kw))
    mixed = promo_effect(ProphetModel(per_node={node: {"regressor_prior_scale": 1e-4}}, **kw))
    assert free[node] == pytest.approx(10, abs=3)  # the simulated effect
    assert abs(tight[node]) < 1 and abs(mixed[node]) < 1
    assert mixed["total"] == pytest.approx(free["total"], rel=1e-6)


# ----------------------------------------------------------------------------- command line
def test_cli_exog_future_and_holidays(tmp_path, capsys):
    from htsforecast.cli import main

    rng = np.random.default_rng(5)
    ds = pd.date_range("2019-01-01", periods=40, freq="MS")
    rows = []
    for state, store in [("CA", "c1"), ("CA", "c2"), ("TX", "t1")]:
        promo = (rng.random(40) < 0.3).astype(float)
        rows.append(pd.DataFrame({"state": state, "store": store, "ds": ds, "promo": promo,
                                  "y": 50 + 20 * promo + rng.normal(0, 1, 40)}))  # fmt: skip
    df = pd.concat(rows, ignore_index=True)
    past = df["ds"] < ds[36]
    df[past].to_csv(tmp_path / "sales.csv", index=False)
    df[~past].drop(columns="y").to_csv(tmp_path / "future.csv", index=False)
    common = ["run", "--data", str(tmp_path / "sales.csv"), "--formula", "state / store",
              "--freq", "MS", "--h", "4", "--methods", "bu", "--level", "80", "--no-plots",
              "--n-jobs", "1"]  # fmt: skip
    argv = [*common, "--models", "arima", "--out", str(tmp_path / "x"), "--exog", "promo:sum",
            "--future", str(tmp_path / "future.csv"), "--holidays", "US:state"]  # fmt: skip
    assert main(argv) == 0
    with_x = pd.read_csv(tmp_path / "x" / "forecasts.csv", parse_dates=["ds"])
    # forecasts.csv keeps its shape: 6 nodes x 4 steps x (base, bu)
    assert list(with_x.columns) == ["unique_id", "ds", "model", "method", "yhat", "yhat_lo_80",
                                    "yhat_hi_80"]  # fmt: skip
    assert len(with_x) == 6 * 4 * 2
    m = with_x.merge(df[~past].assign(unique_id=lambda d: "state=" + d["state"] + "/store="
                                      + d["store"]), on=["unique_id", "ds"])  # fmt: skip
    m = m[m["method"] == "base"]
    assert np.sqrt(((m["yhat"] - m["y"]) ** 2).mean()) < 5  # promo effect 20 is used
    capsys.readouterr()
    common = [*common, "--models", "naive"]
    assert main([*common, "--out", str(tmp_path / "e1"), "--exog", "promo"]) == 2
    assert "exog column 'promo' has no aggregation rule" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "e2"), "--exog", "promo:sum"]) == 2
    assert "--exog promo needs --future" in capsys.readouterr().err
    # holidays alone need no future file: the calendar is known ahead
    assert main([*common, "--out", str(tmp_path / "h"), "--holidays", "US:state"]) == 0


def test_combination_passes_regressors_to_members_and_backtests():
    """A combination with an ARIMA member uses the regressors, in its backtests too."""
    from statsforecast.models import ARIMA

    from htsforecast import forecast
    from htsforecast.models import Combination, Naive, StatsForecastModel

    _, Y, X = _monthly()
    Y, X = Y.drop(columns="temp"), X.drop(columns="temp")
    arima = StatsForecastModel(ARIMA(order=(0, 0, 0)))
    combo = Combination({"arima": arima, "naive": Naive()}, weights="inverse_cv_error")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExogIgnoredWarning)  # combo declares uses_exog
        both = forecast(Y, {"combo": combo, "arima": arima}, h=3, freq="MS", X_future=X)
    w = combo.weights_.set_index("unique_id")
    # with the promotions in its backtests, ARIMA + promo beats the naive forecast everywhere
    assert (w["arima"] > 0.9).all(), w
    fc = both.forecasts.pivot(index=["unique_id", "ds"], columns="model", values="yhat")
    naive = forecast(Y[["unique_id", "ds", "y"]], {"n": Naive()}, h=3, freq="MS").forecasts
    expect = (
        w.loc[fc.index.get_level_values(0), "arima"].to_numpy() * fc["arima"].to_numpy()
        + w.loc[fc.index.get_level_values(0), "naive"].to_numpy()
        * naive.set_index(["unique_id", "ds"]).loc[fc.index, "yhat"].to_numpy()
    )
    np.testing.assert_allclose(fc["combo"].to_numpy(), expect, rtol=1e-10)


def test_sum_mean_min_max_equal_hierarchicalforecast_aggregate():
    """Oracle: hierarchicalforecast's aggregate(exog_vars=...) on the same bottom data."""
    from hierarchicalforecast.utils import aggregate

    from htsforecast.datasets import simulate_promotions

    df = simulate_promotions(n_states=3, stores_per_state=2, n_weeks=30, seed=2).data
    df = df.assign(tot="all")
    rules = {"promo": "sum", "price": "mean", "p_min": "min", "p_max": "max"}
    df = df.assign(p_min=df["price"], p_max=df["price"])
    ref, _, _ = aggregate(
        df, [["tot"], ["tot", "state"], ["tot", "state", "store"]],
        exog_vars={c: r for c, r in rules.items()},
    )  # fmt: skip
    ours = Hierarchy.from_formula("state / store").aggregate(df, freq="W-SUN", exog=rules)
    ids = ref["unique_id"].str.split("/")
    ref["unique_id"] = ids.map(
        lambda p: "total" if len(p) == 1 else "/".join(
            f"{k}={v}" for k, v in zip(["state", "store"], p[1:]))
    )  # fmt: skip
    m = ours.merge(ref, on=["unique_id", "ds"], suffixes=("", "_ref"))
    assert len(m) == len(ours) == 10 * 30
    for col, rule in rules.items():
        np.testing.assert_allclose(m[col], m[f"{col}_{rule}"], rtol=1e-12, err_msg=col)
    np.testing.assert_allclose(m["y"], m["y_ref"], rtol=1e-12)
