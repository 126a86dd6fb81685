"""Tests of the radon loaders: the real survey (counts from SOURCE.md, quirks handled) and the
simulated panel (structure from the survey, determinism across calls and processes, hierarchy)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from htsforecast import pooling
from htsforecast.datasets import Dataset, load_radon_panel, load_radon_survey
from htsforecast.datasets._base import _data_path


@pytest.fixture(scope="module")
def survey() -> pd.DataFrame:
    return load_radon_survey()


@pytest.fixture(scope="module")
def panel() -> Dataset:
    return load_radon_panel()


# ---------------------------------------------------------------------- survey


def test_survey_shape_and_states(survey):
    assert len(survey) == 12_777
    expected = {"state", "survey", "county", "county_fips", "floor", "activity", "log_radon"}
    assert expected | {"uranium", "log_uranium", "start_date"} <= set(survey.columns)
    assert survey.groupby("state")["county_fips"].nunique().to_dict() == {
        "AZ": 15, "IN": 91, "MA": 13, "MI": 12, "MN": 87, "MO": 115, "ND": 53, "PA": 67, "WI": 19,
    }  # fmt: skip
    assert sorted(survey["survey"].unique()) == ["AZ", "IN", "MA", "MN", "MO", "ND", "PA", "R5"]
    assert survey["floor"].value_counts().to_dict() == {0: 8465, 1: 3983, 9: 287, 2: 23, 3: 19}


def test_survey_minnesota_subset_is_gelman_hill(survey):
    mn = survey[survey["survey"] == "MN"]
    assert len(mn) == 919 and mn["county"].nunique() == 85 and (mn["state"] == "MN").all()
    assert mn["floor"].value_counts().to_dict() == {0: 766, 1: 153}
    assert (survey["state"] == "MN").sum() == 919 + 269  # R5 adds Minnesota homes


def test_county_labels_unique_and_one_to_one_with_fips(survey):
    pairs = survey[["state", "county", "county_fips"]].drop_duplicates()
    assert len(pairs) == 472
    assert pairs["county"].is_unique and pairs["county_fips"].is_unique
    labels = pairs.set_index("county_fips")["county"]
    # names shared across states get the state appended; unique ones stay plain
    assert labels[27137] == "ST LOUIS (MN)" and labels[29189] == "ST LOUIS (MO)"
    assert labels[27001] == "AITKIN"
    # R5 reservation names are replaced by the county name; placeholders by the code
    assert labels[26033] == "CHIPPEWA (MI)" and labels[27999] == "FIPS 27999"
    assert labels[42003] == "ALLEGHENY"  # a PA county whose name is blank on some rows
    assert survey["county"].notna().all()


def test_log_radon_uranium_and_dates(survey):
    zero = survey["activity"] == 0
    assert zero.sum() == 90
    np.testing.assert_allclose(survey.loc[zero, "log_radon"], np.log(0.1))
    np.testing.assert_allclose(
        np.exp(survey.loc[~zero, "log_radon"]), survey.loc[~zero, "activity"]
    )
    # AITKIN's uranium straight from cty.dat (27,001: Uppm 0.502054), joined despite duplicates
    cty = pd.read_csv(_data_path("radon", "cty.dat"), skipinitialspace=True)
    cty.columns = cty.columns.str.strip()
    aitkin = cty[(cty["stfips"] == 27) & (cty["ctfips"] == 1)]["Uppm"].iloc[0]
    rows = survey[survey["county_fips"] == 27001]
    np.testing.assert_allclose(rows["uranium"], aitkin)
    np.testing.assert_allclose(rows["log_uranium"], np.log(aitkin))
    assert (
        survey.loc[survey["county_fips"].isin([26999, 27189, 27999, 55999]), "uranium"].isna().all()
    )
    first = survey.iloc[0]
    assert first["start_date"] == pd.Timestamp("1987-11-29")  # startdt 112987
    assert survey["start_date"].between("1987-11-01", "1989-04-30").all()
    assert survey["stop_date"].isna().sum() == 5  # placeholder 10199


def test_survey_returns_a_copy(survey):
    a = load_radon_survey()
    a.loc[0, "log_radon"] = 99.0
    assert load_radon_survey().loc[0, "log_radon"] != 99.0


# ---------------------------------------------------------------------- panel


def test_panel_metadata_and_dtypes(panel):
    assert panel.name == "radon_panel" and panel.formula == "(state / county) * floor"
    assert (panel.freq, panel.season_length) == ("MS", 12)
    d = panel.data
    assert list(d.columns) == ["state", "county", "floor", "ds", "y"]
    for col in ("state", "county", "floor"):
        assert d[col].map(type).eq(str).all()
    assert d["ds"].dtype == "datetime64[ns]" and d["y"].dtype == "float64"
    months = pd.date_range("2005-01-01", "2024-12-01", freq="MS")
    assert d["ds"].nunique() == 240 and (np.sort(d["ds"].unique()) == months.to_numpy()).all()
    assert set(d["floor"]) == {"basement", "first floor"}
    assert (d["y"] >= 0).all() and (d["y"] == np.round(d["y"])).all()


def test_panel_cells_are_the_survey_cells(panel, survey):
    homes = survey[survey["floor"].isin([0, 1])]
    cells = homes[["state", "county", "floor"]].drop_duplicates()
    cells = cells.assign(floor=cells["floor"].map({0: "basement", 1: "first floor"}))
    got = panel.data[["state", "county", "floor"]].drop_duplicates()
    assert len(got) == len(cells) == 866
    key = ["state", "county", "floor"]
    assert got.sort_values(key).to_numpy().tolist() == cells.sort_values(key).to_numpy().tolist()
    assert (panel.data.groupby(key).size() == 240).all()


def test_panel_counts_follow_partial_pooling_probabilities(panel, survey):
    """Cell means are proportional to survey size x P(>= 4 pCi/L) from the pooling module."""
    homes = survey[survey["floor"].isin([0, 1])]
    res = pooling.fit(homes, "log_radon ~ floor", group="county", nested_in="state")
    cells = homes.groupby(["state", "county", "floor"]).size().rename("n").reset_index()
    cells["expected"] = cells["n"] * res.exceedance(cells, np.log(4.0))
    cells["floor"] = cells["floor"].map({0: "basement", 1: "first floor"})
    mean = panel.data.groupby(["state", "county", "floor"])["y"].mean().rename("mean")
    m = cells.merge(mean.reset_index(), on=["state", "county", "floor"])
    # one multiplier per state (season x trend x shocks): within a state, proportional
    for state, part in m.groupby("state"):
        assert np.corrcoef(part["expected"], part["mean"])[0, 1] > 0.99, state
    # basement cells exceed far more often than first-floor cells of the same county
    wide = m.pivot_table(index="county", columns="floor", values=["mean", "n"])
    both = wide.dropna()
    rate = both["mean"] / both["n"]
    assert (rate["basement"] > rate["first floor"]).mean() > 0.8


def test_panel_bottom_noisy_totals_smooth_and_seasonal(panel):
    d = panel.data
    assert (d["y"] == 0).mean() > 0.3  # small noisy counts at the bottom
    total = d.groupby("ds")["y"].sum()
    assert total.min() > 300
    by_month = total.groupby(total.index.month).mean()
    assert by_month.idxmax() in (12, 1, 2) and by_month.idxmin() in (6, 7, 8)
    # series are correlated through common shocks: state totals co-move after removing season
    st = d.groupby(["state", "ds"])["y"].sum().unstack(0)
    resid = np.log1p(st).diff(12).dropna()
    corr = resid.corr().to_numpy()[np.triu_indices(9, 1)]
    assert np.median(corr) > 0.2


def test_panel_identical_across_calls_and_processes(panel):
    again = load_radon_panel()
    pd.testing.assert_frame_equal(panel.data, again.data)
    again.data.loc[0, "y"] = -1.0  # callers get copies
    assert load_radon_panel().data.loc[0, "y"] != -1.0
    code = (
        "import hashlib, pandas as pd; from htsforecast.datasets import load_radon_panel; "
        "d = load_radon_panel().data; "
        "print(hashlib.sha256(pd.util.hash_pandas_object(d, index=True).to_numpy().tobytes())"
        ".hexdigest())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    hashes = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    local = pd.util.hash_pandas_object(panel.data, index=True).to_numpy().tobytes()
    assert hashes == {hashlib.sha256(local).hexdigest()}


def test_panel_hierarchy_nodes(panel, survey):
    from htsforecast import Hierarchy

    hier = Hierarchy.from_formula(panel.formula)
    Y = hier.aggregate(panel.data, time_col="ds", target_col="y", freq="MS")
    homes = survey[survey["floor"].isin([0, 1])]
    n_counties = homes["county"].nunique()
    sizes = {level: len(ids) for level, ids in hier.levels.items()}
    assert sizes == {
        "total": 1,
        "state": 9,
        "floor": 2,
        "state/county": n_counties,
        "state/floor": len(homes[["state", "floor"]].drop_duplicates()),
        "state/county/floor": 866,
    }
    assert n_counties == 471
    ids = set(hier.node_ids)
    assert {"total", "state=MN", "floor=basement", "floor=first floor"} <= ids
    assert {"state=MN/county=AITKIN", "state=MN/county=AITKIN/floor=basement"} <= ids
    total = Y[Y["unique_id"] == "total"].set_index("ds")["y"]
    pd.testing.assert_series_equal(total, panel.data.groupby("ds")["y"].sum(), check_names=False)
