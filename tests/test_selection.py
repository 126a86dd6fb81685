"""Tests of htsforecast.selection: select_best, forecast_best, skill_table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from htsforecast import CVResult, cross_validate, forecast_best, select_best
from htsforecast.errors import DataError
from htsforecast.models import Naive, SeasonalNaive
from htsforecast.reconciliation import BottomUp, MinTrace
from htsforecast.selection import skill_table


def _table() -> pd.DataFrame:
    rows = [
        ("total", "ets", "base", "mase", 1.0),
        ("total", "ets", "ols", "mase", 0.8),
        ("total", "arima", "bu", "mase", 1.5),
        ("bottom", "ets", "base", "mase", 0.9),
        ("bottom", "ets", "ols", "mase", 1.0),
        ("bottom", "arima", "bu", "mase", 0.7),
        ("all", "ets", "base", "mase", 0.95),
        ("all", "ets", "ols", "mase", 0.9),
        ("all", "arima", "bu", "mase", 1.1),
        ("all", "ets", "base", "bias", -0.5),
        ("all", "ets", "ols", "bias", 0.7),
        ("all", "ets", "base", "coverage_80", 0.6),
        ("all", "ets", "ols", "coverage_80", 0.85),
    ]
    return pd.DataFrame(rows, columns=["level", "model", "method", "metric", "value"])


def test_select_best_global_and_per_level() -> None:
    sel = select_best(_table(), "mase")
    assert (sel.model, sel.method) == ("ets", "ols")
    assert sel.scores["all"] == 0.9
    per = select_best(_table(), "mase", by="level")
    assert per.choices == {
        "total": ("ets", "ols"),
        "bottom": ("arima", "bu"),
        "all": ("ets", "ols"),
    }
    assert select_best(_table(), "bias").method == "base"  # |-0.5| < |0.7|
    assert select_best(_table(), "coverage_80").method == "ols"  # |0.85-0.8| < |0.6-0.8|
    with pytest.raises(DataError, match="not in the table"):
        select_best(_table(), "crps")
    with pytest.raises(DataError, match="global"):
        select_best(_table(), "mase", by="node")


def test_cv_select_then_forecast_best_is_coherent(state_city) -> None:
    _, hier, Y = state_city
    models = {"naive": Naive(), "snaive": SeasonalNaive(4)}
    methods = {"bu": BottomUp(), "ols": MinTrace("ols")}
    cv = cross_validate(Y, hier, models, methods, h=4, n_windows=2, freq="QS", season_length=4)
    assert isinstance(cv, CVResult)
    table = cv.table
    sel = select_best(cv, "rmse")
    assert sel.scores["all"] == pytest.approx(
        table.query("level == 'all' and metric == 'rmse'")["value"].min()
    )
    fc = forecast_best(Y, hier, sel, models, methods, h=4, freq="QS")
    assert set(zip(fc["model"], fc["method"])) == {(sel.model, sel.method)}
    assert fc["ds"].min() > Y["ds"].max()
    wide = fc.pivot(index="unique_id", columns="ds", values="yhat").loc[hier.node_ids]
    if sel.method != "base":
        S = hier.S.toarray()
        np.testing.assert_allclose(S @ wide.to_numpy()[-hier.n_bottom :], wide.to_numpy())
    per = select_best(table, "rmse", by="level")
    fc_lv = forecast_best(Y, hier, per, models, methods, h=4, freq="QS")
    assert len(fc_lv) == hier.n_nodes * 4
    for lv, nodes in hier.levels.items():
        part = fc_lv[fc_lv["unique_id"].isin(nodes)]
        assert set(zip(part["model"], part["method"])) == {per.choices[lv]}


def test_skill_table_against_reference() -> None:
    table = _table()
    sk = skill_table(table, "mase", reference=("ets", "base"))
    got = sk.set_index(["level", "model", "method"])["value"]
    assert got[("total", "ets", "ols")] == pytest.approx(1 - 0.8 / 1.0)
    assert got[("bottom", "arima", "bu")] == pytest.approx(1 - 0.7 / 0.9)
    assert got[("all", "ets", "base")] == 0.0
    assert set(sk["metric"]) == {"mase_skill"}
    with pytest.raises(DataError, match="reference"):
        skill_table(table, "mase", reference=("snaive", "base"))
