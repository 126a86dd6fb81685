"""Tests of htsforecast.validation: the one place input is checked, once per run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from htsforecast import cross_validate, forecast, reconcile, validation
from htsforecast.errors import DataError
from htsforecast.hierarchy import Hierarchy
from htsforecast.models import Naive
from htsforecast.reconciliation import BottomUp


# ----------------------------------------------------------------------------- validate once
def test_cross_validation_validates_once_and_never_pivots(state_city, monkeypatch) -> None:
    _, hier, Y = state_city
    calls = {"validate_panel": 0, "date_grid": 0, "check_duplicates": 0, "pivot": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name in ("validate_panel", "date_grid", "check_duplicates"):
        monkeypatch.setattr(validation, name, counted(name, getattr(validation, name)))
    monkeypatch.setattr(pd.DataFrame, "pivot", counted("pivot", pd.DataFrame.pivot))
    k = 3
    res = cross_validate(Y, hier, {"n": Naive()}, {"bu": BottomUp()}, h=2, n_windows=k,
                         freq="QS", level=[80], metrics=("mase", "coverage"))  # fmt: skip
    assert res.by_window["cutoff"].nunique() == k
    # one validation pass for k windows (it was k + 1 before), and no frame pivots at all
    assert calls == {"validate_panel": 1, "date_grid": 1, "check_duplicates": 1, "pivot": 0}


def test_validated_panel_is_not_validated_again(state_city, monkeypatch) -> None:
    _, hier, Y = state_city
    panel = validation.validate_panel(Y, "QS", nodes=hier.node_ids)
    seen = []
    grid = validation.date_grid
    monkeypatch.setattr(validation, "date_grid", lambda *a, **k: seen.append(1) or grid(*a, **k))
    a = forecast(panel, {"n": Naive()}, h=2, freq="QS").forecasts
    b = forecast(Y, {"n": Naive()}, h=2, freq="QS").forecasts
    assert len(seen) == 1  # only the frame was checked
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(DataError, match="validated with freq='QS'"):
        forecast(panel, {"n": Naive()}, h=2, freq="MS")


def test_panel_arrays_match_the_frame(state_city) -> None:
    _, hier, Y = state_city
    panel = validation.validate_panel(Y.sample(frac=1, random_state=0), "QS", hier.node_ids)
    wide = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids]
    np.testing.assert_array_equal(panel.values, wide.to_numpy())
    assert list(panel.ids) == hier.node_ids and list(panel.dates) == list(wide.columns)
    cut = panel.cut(5)
    np.testing.assert_array_equal(cut.values, wide.to_numpy()[:, :5])


# ----------------------------------------------------------------------------- frequency
def test_frequency_typo_fails_before_allocating(long_frame) -> None:
    monthly = long_frame({"a": np.arange(120.0)}, freq="MS")
    # 'ms' is milliseconds: ~3e11 grid points for 10 years; refused at once, with the fix
    with pytest.raises(DataError, match=r"(?i)did you mean freq='MS' \(month start\)"):
        forecast(monthly, {"n": Naive()}, h=2, freq="ms")
    bottom = monthly.rename(columns={"unique_id": "g"})
    with pytest.raises(DataError, match=r"(?i)about [\d,]+ periods.*did you mean freq='MS'"):
        Hierarchy.from_formula("g").aggregate(bottom, freq="ms")


def test_monday_weekly_data_gets_a_weekly_hint(long_frame) -> None:
    mondays = long_frame({"a": np.arange(30.0)}, freq="W-MON", start="2021-01-04")
    with pytest.raises(DataError, match=r"freq='W-MON' \(weekly on Mondays\)") as err:
        forecast(mondays, {"n": Naive()}, h=2, freq="W")
    assert "MS" not in str(err.value) and "month" not in str(err.value)
    assert len(forecast(mondays, {"n": Naive()}, h=2, freq="W-MON").forecasts) == 2


def test_mixed_dst_offsets_are_local_wall_time(long_frame) -> None:
    days = pd.date_range("2021-03-20", periods=20, freq="D")
    local = days.tz_localize("Europe/Paris")  # +01:00, then +02:00 from March 28
    df = pd.DataFrame({"unique_id": "a", "ds": local.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "y": np.arange(20.0)})  # fmt: skip
    assert df["ds"].str.endswith("+0100").any() and df["ds"].str.endswith("+0200").any()
    base = forecast(df, {"n": Naive()}, h=1, freq="D")
    assert base.forecasts["ds"].tolist() == [pd.Timestamp("2021-04-09")]
    aware = df.assign(ds=local)  # a tz-aware column: same wall-time policy
    assert forecast(aware, {"n": Naive()}, h=1, freq="D").forecasts.equals(base.forecasts)
    bad = df.assign(ds=df["ds"].where(df.index != 3, "not a date"))
    with pytest.raises(DataError, match="time column 'ds' cannot be parsed"):
        forecast(bad, {"n": Naive()}, h=1, freq="D")


# ----------------------------------------------------------------------------- levels, duplicates
def test_repeated_levels_are_deduplicated_everywhere(state_city) -> None:
    _, hier, Y = state_city
    base = forecast(Y, {"n": Naive()}, h=2, freq="QS", level=[80, 80, 95])
    assert base.level == [80, 95]
    rec = reconcile(base, hier, {"bu": BottomUp()}, level=[80, 80])
    assert rec.level == [80]
    assert [c for c in rec.forecasts.columns if c.startswith("yhat_")] == [
        "yhat_lo_80",
        "yhat_hi_80",
    ]
    cv = cross_validate(Y, hier, {"n": Naive()}, None, h=2, n_windows=1, freq="QS",
                        level=[95, 80, 80], metrics=("coverage",))  # fmt: skip
    assert sorted(cv.table["metric"].unique()) == ["coverage_80", "coverage_95"]


def test_reconcile_rejects_duplicated_base_rows(state_city) -> None:
    _, hier, Y = state_city
    wide = forecast(Y, {"n": Naive()}, h=2, freq="QS").wide()
    doubled = pd.concat([wide, wide.iloc[[4]]], ignore_index=True)
    with pytest.raises(DataError, match=r"duplicated \(unique_id, ds\) row\(s\): state=B @ 2020"):
        reconcile(doubled, hier, {"bu": BottomUp()}, Y_df=Y.assign(n=Y["y"]))
