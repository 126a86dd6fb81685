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


# ------------------------------------------------------------------ the job's robust choice
def _by_window(scores: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """``by_window`` rows (level 'all', metric mase) from per-window scores per pipeline."""
    cut = pd.date_range("2020-01-01", periods=len(next(iter(scores.values()))), freq="QS")
    rows = [("all", c, m, k, "mase", v) for (m, k), vals in scores.items()
            for c, v in zip(cut, vals)]  # fmt: skip
    rows.append(("total", cut[0], "ets", "bu", "mase", 0.0))  # other levels are ignored
    return pd.DataFrame(rows, columns=["level", "cutoff", "model", "method", "metric", "value"])


def test_choose_pipeline_one_window_takes_the_lowest_and_honours_eligibility() -> None:
    from htsforecast.selection import choose_pipeline

    bw = _by_window({("ets", "erm"): [0.5], ("ets", "ols"): [0.9], ("ets", "base"): [0.4],
                     ("ets", "bu"): [0.9002]})  # fmt: skip
    out = choose_pipeline(bw, "mase")
    assert (out["model"], out["method"], out["score"]) == ("ets", "erm", 0.5)
    assert out["windows"] == 1 and out["rule"] == "lowest mean score"
    out = choose_pipeline(bw, "mase", eligible=lambda model, method: method != "erm")
    assert (out["method"], out["runner_up"]["method"]) == ("ols", "bu")
    assert out["runner_up"]["margin"] == pytest.approx(0.0002)
    assert out["tied_with"] == ["ets/bu"]  # closer than 5e-4
    assert "ets/erm" in out["excluded"]
    assert choose_pipeline(bw, "mase", allow_incoherent=True)["method"] == "base"


def test_choose_pipeline_one_standard_error_rule_by_hand() -> None:
    from htsforecast.selection import choose_pipeline

    # ols: mean 1.0. mint_shrink: excess over ols (0.1, -0.1, 0.1), mean 0.0333, sd 0.1155,
    # se 0.0667 >= 0.0333: within one SE, and mint_shrink is preferred.
    close = {("ets", "ols"): [1.0, 1.2, 0.8], ("ets", "mint_shrink"): [1.1, 1.1, 0.9]}
    out = choose_pipeline(_by_window(close), "mase")
    assert out["method"] == "mint_shrink" and out["rule"].startswith("one-standard-error")
    assert out["score"] == pytest.approx(3.1 / 3)
    assert out["runner_up"]["method"] == "ols" and out["runner_up"]["margin"] < 0
    # a constant excess of 0.05 has se 0: mint_shrink is consistently worse, ols stays
    far = {("ets", "ols"): [1.0, 1.2, 0.8], ("ets", "mint_shrink"): [1.05, 1.25, 0.85]}
    out = choose_pipeline(_by_window(far), "mase")
    assert out["method"] == "ols" and out["rule"] == "lowest mean score (no close rival)"
    # a noisy rival passes the paired test (excess 0.3, -0.26, 0.31: mean 0.117 <= se 0.189) but
    # its mean is far beyond the best's own standard error (0.006): the best stays
    noisy = {("ets", "bu"): [1.0, 1.01, 0.99], ("ets", "ols"): [1.3, 0.75, 1.3]}
    d = np.array([0.3, -0.26, 0.31])
    assert d.mean() <= d.std(ddof=1) / np.sqrt(3)  # paired: within one SE
    assert d.mean() > np.std([1.0, 1.01, 0.99], ddof=1) / np.sqrt(3)  # beyond the best's SE
    out = choose_pipeline(_by_window(noisy), "mase")
    assert out["method"] == "bu" and out["rule"] == "lowest mean score (no close rival)"
    # close rivals outside the preference list never displace the best
    other = {("ets", "td_fp"): [1.0, 1.2, 0.8], ("ets", "erm"): [1.1, 1.1, 0.9]}
    assert choose_pipeline(_by_window(other), "mase")["method"] == "td_fp"


def test_choose_pipeline_needs_a_finite_score_in_every_window() -> None:
    from htsforecast.selection import choose_pipeline

    bw = _by_window({("ets", "erm"): [0.1, np.inf], ("ets", "bu"): [1.0, 1.1]})
    out = choose_pipeline(bw, "mase")
    assert out["method"] == "bu" and "ets/erm" in out["excluded"]
    with pytest.raises(DataError, match="finite 'mase' score in every window.*rmse"):
        choose_pipeline(_by_window({("ets", "bu"): [np.nan, 1.0]}), "mase")


def test_default_cv_plan_and_erm_eligibility() -> None:
    from htsforecast.selection import default_cv_plan, erm_eligible

    # prison (40 quarters, h = 8): yearly origins, training on 24, 28, 32 >= 20 quarters
    assert default_cv_plan(40, 8, 4, 3_240) == (3, 4)
    assert default_cv_plan(28, 8, 4, 2_492) == (2, 4)  # TourismSmall: trains on 16 and 20
    assert default_cv_plan(240, 12, 12, 328_080) == (1, 12)  # large data: one window
    assert default_cv_plan(14, 3, 12, 10) == (0, 3)  # too short: no evaluation
    assert erm_eligible(8, 8) and not erm_eligible(8, 81)
