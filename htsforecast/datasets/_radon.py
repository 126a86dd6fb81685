"""The radon data: the real EPA survey (Gelman & Hill) and the simulated monthly panel built from it.

``load_radon_survey()`` returns the cross-sectional State Residential Radon Survey (12,777 homes in
9 states, 1987-89) joined with county soil uranium. ``load_radon_panel()`` returns htsforecast's
default data set: a SIMULATED monthly panel of home radon tests at or above the 4 pCi/L action
level, ``(state / county) * floor``, whose structure and exceedance probabilities come from the
survey via partial pooling (:mod:`htsforecast.pooling`). ``data/radon/SOURCE.md`` documents the
files, their quirks and exactly how the panel is generated.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from htsforecast.datasets._base import Dataset, _data_path

__all__ = ["load_radon_panel", "load_radon_survey", "PANEL_SEED"]

#: Seed of the numpy Generator that simulates the panel (do not change: the data set is defined by it).
PANEL_SEED = 4_2024
_THRESHOLD_PCI = 4.0  # EPA action level, pCi/L
_START, _END = "2005-01-01", "2024-12-01"
_TESTS_PER_SURVEY_HOME = 0.25  # expected tests per month per surveyed home of a cell, in 2005
_FLOORS = {0: "basement", 1: "first floor"}


def load_radon_survey() -> pd.DataFrame:
    """The real Gelman & Hill multi-state radon survey, one row per home (12,777 rows).

    ``srrs2.dat`` joined with the de-duplicated ``cty.dat`` on ``county_fips``. Rows keep the file's
    order, so ``survey[survey["survey"] == "MN"]`` is exactly Gelman & Hill's 919 Minnesota homes.

    Returns
    -------
    pandas.DataFrame
        Columns:

        - ``idnum`` (int): survey id.
        - ``state`` (str): true state (srrs2 ``state2``; AZ IN MA MI MN MO ND PA WI).
        - ``survey`` (str): the survey that measured the home (srrs2 ``state``: the 8 state
          surveys, with ``"R5"`` the EPA Region 5 survey that spans MI, MN and WI).
        - ``county`` (str): readable county label, unique across states (see Notes).
        - ``county_fips`` (int): ``stfips * 1000 + cntyfips`` (472 distinct).
        - ``floor`` (int): 0 basement, 1 first floor; 2 and 3 are undocumented codes (42 homes) and
          9 is presumably unknown (287 homes). Models use only floors 0 and 1.
        - ``activity`` (float): radon level, pCi/L. ``log_radon`` = log(activity), with the 90
          zero readings set to 0.1 first (Gelman & Hill's convention).
        - ``uranium`` (float): county soil uranium, ppm (``cty.dat`` ``Uppm``; NaN for the 4
          county codes not in ``cty.dat``). ``log_uranium`` = log(uranium), NaN where uranium is
          missing or 0.
        - ``start_date``, ``stop_date`` (datetime64): measurement dates (``stop_date`` NaT for the
          placeholder 1999-01-01).
        - ``typebldg``, ``room``, ``basement``, ``adjwt``, ``zip``: as in ``srrs2.dat``
          (``basement`` str Y/N/0 or NaN, ``adjwt`` the survey weight).

    Notes
    -----
    County labels are deterministic: the county's name as spelled by its own state survey (the most
    frequent non-blank name; the R5 survey records reservation names in the county field, and 23
    PA rows have none), else the ``cty.dat`` name (which has its spaces removed, e.g.
    ``GRANDTRAVERSE``), else ``"FIPS nnnnn"`` for the R5 placeholder codes 26999, 27189, 27999,
    55999. A name used by more than one county (e.g. ``ST LOUIS`` in MN and MO, ``WASHINGTON`` in
    several states) gets its state appended: ``"ST LOUIS (MN)"``.
    """
    return _survey().copy()


def load_radon_panel() -> Dataset:
    """The default data set: a SIMULATED monthly panel of home radon tests at or above 4 pCi/L.

    ``(state / county) * floor`` with 9 states, the survey's counties and ``floor`` in
    ``{"basement", "first floor"}``: one bottom series per county x floor cell observed in the real
    survey (866 cells), 240 months from 2005-01 to 2024-12 (``freq="MS"``, ``season_length=12``).
    ``y`` (float64) is a monthly count. Everything is simulated from survey-derived parameters with a
    fixed seed (:data:`PANEL_SEED`); see ``data/radon/SOURCE.md`` for the exact recipe. Identical
    across calls and processes; cached in-process (each call returns a fresh copy).

    Returns
    -------
    Dataset
        ``name="radon_panel"``, ``data`` with columns ``state, county, floor`` (str), ``ds``
        (datetime64[ns]) and ``y`` (float64), sorted by keys then ``ds``.
    """
    data = _panel().copy()
    return Dataset(
        name="radon_panel",
        data=data,
        formula="(state / county) * floor",
        freq="MS",
        season_length=12,
        description=(
            "SIMULATED monthly counts of home radon tests >= 4 pCi/L by state, county and floor, "
            "2005-2024, built from the EPA radon survey (Gelman & Hill) with partial pooling"
        ),
    )


# --------------------------------------------------------------------------------------------
# survey


def _read_dat(name: str, **kwargs) -> pd.DataFrame:
    df = pd.read_csv(_data_path("radon", name), skipinitialspace=True, **kwargs)
    df.columns = df.columns.str.strip()
    for col in df.select_dtypes("object").columns:
        df[col] = df[col].str.strip().replace("", np.nan)
    return df


def _parse_mmddyy(values: pd.Series) -> pd.Series:
    """``112987`` -> 1987-11-29 (MMDDYY integers with the leading zero dropped)."""
    dates = pd.to_datetime(values.astype(str).str.zfill(6), format="%m%d%y")
    return dates.where(dates != pd.Timestamp("1999-01-01"))


@lru_cache(maxsize=1)
def _survey() -> pd.DataFrame:
    raw = _read_dat("srrs2.dat")
    cty = _read_dat("cty.dat", dtype={"stfips": str, "ctfips": str})
    cty["county_fips"] = cty["stfips"].astype(int) * 1000 + cty["ctfips"].astype(int)
    cty = cty.drop_duplicates("county_fips")  # 83 duplicated rows, identical Uppm
    fips = raw["stfips"] * 1000 + raw["cntyfips"]
    act = raw["activity"].astype(float)
    out = pd.DataFrame(
        {
            "idnum": raw["idnum"].astype(int),
            "state": raw["state2"].astype(str),
            "survey": raw["state"].astype(str),
            "county": fips.map(_county_labels(raw, fips, cty)),
            "county_fips": fips.astype(int),
            "floor": raw["floor"].astype(int),
            "activity": act,
            "log_radon": np.log(act.where(act > 0, 0.1)),
        }
    )
    uranium = fips.map(cty.set_index("county_fips")["Uppm"]).astype(float)
    out["uranium"] = uranium
    out["log_uranium"] = np.log(uranium.where(uranium > 0))
    out["start_date"] = _parse_mmddyy(raw["startdt"])
    out["stop_date"] = _parse_mmddyy(raw["stopdt"])
    for col in ("typebldg", "room", "basement", "adjwt", "zip"):
        out[col] = raw[col]
    return out


def _county_labels(raw: pd.DataFrame, fips: pd.Series, cty: pd.DataFrame) -> dict[int, str]:
    """Map county FIPS -> readable label unique across the survey (rules in load_radon_survey)."""
    own = raw.assign(fips=fips)[(raw["state"] == raw["state2"]) & raw["county"].notna()]
    counts = own.groupby(["fips", "county"]).size().reset_index(name="k")
    counts = counts.sort_values(["fips", "k", "county"], ascending=[True, False, True])
    names = counts.drop_duplicates("fips").set_index("fips")["county"]
    table = pd.DataFrame({"state": raw["state2"], "fips": fips}).drop_duplicates("fips")
    table = table.sort_values("fips").set_index("fips")
    cty_names = cty.set_index("county_fips")["cty"]
    table["name"] = [names.get(f, cty_names.get(f, f"FIPS {f:05d}")) for f in table.index]
    shared = table["name"].duplicated(keep=False)
    table.loc[shared, "name"] = table.loc[shared, "name"] + " (" + table.loc[shared, "state"] + ")"
    still = table["name"].duplicated(keep=False)
    table.loc[still, "name"] = table.loc[still, "name"] + " " + table.index[still].astype(str)
    return table["name"].to_dict()


# --------------------------------------------------------------------------------------------
# simulated panel


def _cell_probabilities(survey: pd.DataFrame) -> pd.DataFrame:
    """One row per county x floor cell of the survey (floors 0/1): ``state, county, floor_code,
    n, p`` with ``p`` = P(radon >= 4 pCi/L) under the partial-pooling model
    ``log_radon ~ floor + (1 | county)`` with one intercept per state (counties shrunk toward their
    state's mean), rounded to 6 decimals so the simulation is immune to floating-point noise."""
    from htsforecast import pooling

    homes = survey[survey["floor"].isin(list(_FLOORS))]
    res = pooling.fit(homes, "log_radon ~ floor", group="county", nested_in="state")
    cells = homes.groupby(["state", "county", "floor"]).size().rename("n").reset_index()
    cells["p"] = np.round(res.exceedance(cells, np.log(_THRESHOLD_PCI)), 6)
    return cells.rename(columns={"floor": "floor_code"})


def _state_multipliers(
    rng: np.random.Generator, n_states: int, months: pd.DatetimeIndex
) -> np.ndarray:
    """(n_states, T) multiplicative state effects: winter seasonality x trend x shocks."""
    T = len(months)
    amp = rng.uniform(0.3, 0.6, n_states)  # winter seasonality amplitude (log scale)
    growth = rng.normal(0.03, 0.02, n_states)  # yearly log growth of testing
    phase = 2 * np.pi * (months.month.to_numpy() - 1) / 12  # peak in January
    season = np.exp(amp[:, None] * np.cos(phase)[None, :])
    season /= season[:, :12].mean(axis=1, keepdims=True)
    years = (np.arange(T) / 12.0)[None, :]
    trend = np.exp(growth[:, None] * years)
    common = _ar1(rng, 1, T, phi=0.6, sigma=0.10)  # national shocks shared by every series
    local = _ar1(rng, n_states, T, phi=0.5, sigma=0.06)  # state shocks
    return season * trend * np.exp(common + local)


def _ar1(rng: np.random.Generator, k: int, T: int, phi: float, sigma: float) -> np.ndarray:
    """(k, T) stationary AR(1) paths with innovation sd ``sigma``."""
    eps = rng.normal(0.0, sigma, (k, T))
    out = np.empty((k, T))
    out[:, 0] = eps[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, T):
        out[:, t] = phi * out[:, t - 1] + eps[:, t]
    return out


@lru_cache(maxsize=1)
def _panel() -> pd.DataFrame:
    cells = _cell_probabilities(_survey())  # sorted by state, county, floor code
    months = pd.date_range(_START, _END, freq="MS")
    rng = np.random.default_rng(PANEL_SEED)
    states = sorted(cells["state"].unique())
    mult = _state_multipliers(rng, len(states), months)
    state_idx = cells["state"].map({s: i for i, s in enumerate(states)}).to_numpy()
    base = _TESTS_PER_SURVEY_HOME * cells["n"].to_numpy() * cells["p"].to_numpy()
    lam = base[:, None] * mult[state_idx]  # (n_cells, T)
    y = rng.poisson(lam).astype("float64")
    T = len(months)
    data = pd.DataFrame(
        {
            "state": np.repeat(cells["state"].to_numpy(dtype=object), T),
            "county": np.repeat(cells["county"].to_numpy(dtype=object), T),
            "floor": np.repeat(cells["floor_code"].map(_FLOORS).to_numpy(dtype=object), T),
            "ds": np.tile(months.to_numpy(dtype="datetime64[ns]"), len(cells)),
            "y": y.ravel(),
        }
    )
    return data.sort_values(["state", "county", "floor", "ds"], kind="stable", ignore_index=True)
