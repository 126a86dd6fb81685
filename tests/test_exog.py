"""Exogenous regressors: aggregation rules, level covariates, future values, models, holidays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from htsforecast import DataError, Hierarchy, LevelCovariate

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
