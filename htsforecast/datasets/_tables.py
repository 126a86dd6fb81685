"""Loaders for the bundled published tables: tourism, prison, tourism_large, tourism_small, labour.

Each loader reads the files copied into ``data/<name>/`` (see the ``SOURCE.md`` there), keeps the
values exactly as shipped, and returns a :class:`~htsforecast.datasets.Dataset` holding the
bottom-level long data and the formula of the hierarchy. The benchmark sets that ship a
summing matrix (tourism_large, tourism_small, labour) also carry it as ``S_ref`` together with ``ref_keys``,
which maps every shipped label to htsforecast key values.
"""

from __future__ import annotations

import ast
import re

import numpy as np
import pandas as pd

from htsforecast.datasets._base import AGGREGATED, Dataset, _data_path
from htsforecast.errors import DataError

__all__ = [
    "load_labour",
    "load_prison",
    "load_tourism",
    "load_tourism_large",
    "load_tourism_small",
]

_QUARTER = re.compile(r"^(\d{4}) Q([1-4])$")


def _finish(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Order columns ``keys..., ds, y``, sort by keys then ``ds``, fix dtypes."""
    out = df[[*keys, "ds", "y"]].sort_values([*keys, "ds"], kind="stable")
    out = out.reset_index(drop=True)
    out[keys] = out[keys].astype(str)
    out["ds"] = pd.to_datetime(out["ds"]).astype("datetime64[ns]")
    out["y"] = out["y"].astype("float64")
    return out


def _quarter_start(labels: pd.Series) -> pd.Series:
    """Convert ``"1998 Q1"`` labels to the quarter's first day (``1998-01-01``)."""
    parts = labels.str.extract(_QUARTER)
    bad = labels[parts[0].isna()]
    if len(bad):
        raise DataError(
            f"column 'Quarter' has {len(bad)} value(s) not of the form 'YYYY Qn', "
            f"e.g. {bad.iloc[0]!r} (row {bad.index[0]}). Hint: the bundled tourism.csv is damaged."
        )
    year = parts[0].astype(int)
    month = 3 * parts[1].astype(int) - 2
    return pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1}))


def _wide_to_long(wide: pd.DataFrame, bottom: list[str], keys: pd.DataFrame) -> pd.DataFrame:
    """Melt the ``bottom`` columns of a wide frame (index = dates) into long keyed rows."""
    n_t = len(wide)
    values = wide[bottom].to_numpy(dtype="float64")
    long = pd.DataFrame(
        {
            "ds": np.tile(pd.to_datetime(wide.index).to_numpy(), len(bottom)),
            "y": values.T.ravel(),
        }
    )
    for col in keys.columns:
        long[col] = np.repeat(keys.loc[bottom, col].to_numpy(), n_t)
    return long


def _read_agg_mat(name: str) -> pd.DataFrame:
    """The shipped summing matrix of ``name`` (index = node labels), with its columns labelled
    by the bottom rows they select.

    The last ``n_bottom`` rows of a shipped matrix are the identity, which ties column ``j`` to
    bottom row ``j``; the column *headers* are not trusted because labour's ``agg_mat.csv`` has
    them in a different order from its rows (only 2 of 32 headers name the right series). The
    matrix values are kept as shipped.
    """
    S = pd.read_csv(_data_path(name, "agg_mat.csv"), index_col=0)
    n_bottom = S.shape[1]
    if not np.array_equal(S.to_numpy()[-n_bottom:], np.eye(n_bottom)):
        raise DataError(
            f"the last {n_bottom} rows of {name}/agg_mat.csv are not the identity, so its "
            "columns cannot be matched to bottom series. Hint: the bundled file is damaged."
        )
    S.columns = S.index[-n_bottom:]
    return S


def _read_wide(name: str) -> pd.DataFrame:
    """The shipped wide data of ``name``: index = period start (str), one column per node."""
    return pd.read_csv(_data_path(name, "data.csv"), index_col=0)


def load_tourism() -> Dataset:
    """Quarterly Australian domestic overnight trips (fpp3 / tsibble ``tourism``).

    304 bottom series (76 regions x 4 purposes) x 80 quarters (1998 Q1 - 2017 Q4), trips in
    thousands. Keys ``state, region, purpose``; formula ``"(state / region) * purpose"`` (425
    nodes, as in FPP3 Ch. 11). ``ds`` is the quarter's first day. State labels are as shipped:
    ``"ACT"`` is abbreviated, the seven others are spelled out.

    Returns
    -------
    Dataset
    """
    raw = pd.read_csv(_data_path("tourism", "tourism.csv"))
    df = pd.DataFrame(
        {
            "state": raw["State"],
            "region": raw["Region"],
            "purpose": raw["Purpose"],
            "ds": _quarter_start(raw["Quarter"]),
            "y": raw["Trips"],
        }
    )
    return Dataset(
        name="tourism",
        data=_finish(df, ["state", "region", "purpose"]),
        formula="(state / region) * purpose",
        freq="QS",
        season_length=4,
        description="Australian domestic overnight trips (thousands) by state, region and "
        "purpose, quarterly 1998 Q1-2017 Q4 (fpp3)",
    )


def load_prison() -> Dataset:
    """Quarterly Australian prison population (fpp3 ``prison``).

    64 bottom series (8 states x 2 genders x 2 legal statuses x 2 indigenous statuses) x 48
    quarters (2005 Q1 - 2016 Q4), number of prisoners. The file dates each quarter by the first
    day of its *last* month (``2005-03-01``); ``ds`` here is the quarter's first day
    (``2005-01-01``), like the other quarterly sets. The formula crosses all four keys,
    ``"state * gender * legal * indigenous"``: every marginal and every 2-, 3- and 4-way
    crossing, 9 x 3 x 3 x 3 = 243 nodes (FPP3 Ch. 11 uses the 3-key ``gender * legal * state``).

    Returns
    -------
    Dataset
    """
    raw = pd.read_csv(_data_path("prison", "prison_population.csv"))
    ds = pd.to_datetime(raw["date"]).dt.to_period("Q").dt.to_timestamp()
    keys = ["state", "gender", "legal", "indigenous"]
    df = raw[keys].assign(ds=ds, y=raw["count"])
    return Dataset(
        name="prison",
        data=_finish(df, keys),
        formula="state * gender * legal * indigenous",
        freq="QS",
        season_length=4,
        description="Australian prisoners by state, gender, legal and indigenous status, "
        "quarterly 2005 Q1-2016 Q4 (fpp3)",
    )


def _tourism_large_keys(labels: list[str]) -> pd.DataFrame:
    """Key table for TourismLarge labels such as ``TotalAll``, ``AHol``, ``ABAll``, ``ABCOth``.

    A label is a geographic code (``Total``, or 1-3 letters: state ``A``, zone ``AB``, region
    ``ABC``) followed by a 3-letter purpose (``Hol Vis Bus Oth``) or ``All``. Zone and region
    keep the full code so that they are unique across states.
    """
    rows = []
    for label in labels:
        geo, purpose = label[:-3], label[-3:]
        if not (geo == "Total" or re.fullmatch("[A-Z]{1,3}", geo)) or purpose not in (
            "All",
            "Hol",
            "Vis",
            "Bus",
            "Oth",
        ):
            raise DataError(
                f"TourismLarge label {label!r} is not '<geo code><Hol|Vis|Bus|Oth|All>'. "
                "Hint: the bundled tourism_large files are damaged."
            )
        code = "" if geo == "Total" else geo
        rows.append(
            [code[:n] if len(code) >= n else AGGREGATED for n in (1, 2, 3)]
            + [AGGREGATED if purpose == "All" else purpose]
        )
    return pd.DataFrame(rows, index=labels, columns=["state", "zone", "region", "purpose"])


def load_tourism_large() -> Dataset:
    """Monthly Australian domestic visitor nights, TourismLarge (Wickramasuriya et al. 2019).

    304 bottom series x 228 months (1998-01 - 2016-12), visitor nights in thousands. Keys
    ``state, zone, region, purpose`` hold the shipped codes (state ``"A"``, zone ``"AB"``,
    region ``"ABC"``, purpose ``"Hol" "Vis" "Bus" "Oth"``); formula
    ``"(state / zone / region) * purpose"`` (555 nodes). ``S_ref`` is the shipped
    ``agg_mat.csv`` (555 x 304), ``ref_keys`` maps its labels to the keys.

    Returns
    -------
    Dataset
    """
    wide = _read_wide("tourism_large")
    S_ref = _read_agg_mat("tourism_large")
    ref_keys = _tourism_large_keys(list(S_ref.index))
    bottom = list(S_ref.columns)
    df = _wide_to_long(wide, bottom, ref_keys)
    return Dataset(
        name="tourism_large",
        data=_finish(df, list(ref_keys.columns)),
        formula="(state / zone / region) * purpose",
        freq="MS",
        season_length=12,
        description="Australian domestic visitor nights (thousands) by state, zone, region "
        "and purpose, monthly 1998-01-2016-12 (TourismLarge)",
        S_ref=S_ref,
        ref_keys=ref_keys,
    )


_SMALL_PURPOSES = ("hol", "vfr", "bus", "oth")
_SMALL_STATES = ("nsw", "vic", "qld", "sa", "wa", "tas", "nt")


def _tourism_small_keys(labels: list[str]) -> pd.DataFrame:
    """Key table for TourismSmall labels ``total``, ``hol``, ``nsw-hol``, ``nsw-hol-city``.

    A label is ``total``, a purpose, ``<state>-<purpose>`` or ``<state>-<purpose>-<city|noncity>``
    (lower case, as shipped). Keys ``purpose, state, city`` hold the parts; the nesting
    ``purpose / state / city`` identifies a state by its purpose, as fable's
    ``aggregate_key(Purpose / State / CityNonCity)``.
    """
    rows = []
    for label in labels:
        parts = label.split("-")
        if label == "total":
            purpose, state, city = AGGREGATED, AGGREGATED, AGGREGATED
        elif len(parts) == 1:
            purpose, state, city = parts[0], AGGREGATED, AGGREGATED
        else:
            state, purpose, city = (*parts, AGGREGATED)[:3] if len(parts) <= 3 else ("", "", "")
        if (
            purpose not in (*_SMALL_PURPOSES, AGGREGATED)
            or (purpose == AGGREGATED and label != "total")
            or state not in (*_SMALL_STATES, AGGREGATED)
            or city not in ("city", "noncity", AGGREGATED)
        ):
            raise DataError(
                f"TourismSmall label {label!r} is not 'total', '<purpose>', '<state>-<purpose>' "
                "or '<state>-<purpose>-<city|noncity>'. Hint: the bundled tourism_small files "
                "are damaged."
            )
        rows.append([purpose, state, city])
    return pd.DataFrame(rows, index=labels, columns=["purpose", "state", "city"])


def load_tourism_small() -> Dataset:
    """Quarterly Australian domestic visitor nights, TourismSmall (Athanasopoulos et al. 2009).

    56 bottom series (4 purposes x 7 states x capital city / other) x 36 quarters (1998 Q1 -
    2006 Q4), visitor nights in thousands. Keys ``purpose`` (``"hol" "vfr" "bus" "oth"``),
    ``state`` (``"nsw"`` ...) and ``city`` (``"city"`` / ``"noncity"``); formula
    ``"purpose / state / city"`` (1 + 4 + 28 + 56 = 89 nodes, as Nixtla's ``TourismSmall``).
    The shipped dates are quarter ends; ``ds`` is the quarter's first day. ``S_ref`` is the
    shipped ``agg_mat.csv`` (89 x 56), ``ref_keys`` maps its labels to the keys.

    Returns
    -------
    Dataset
    """
    wide = _read_wide("tourism_small")
    wide.index = pd.to_datetime(wide.index).to_period("Q").to_timestamp()
    S_ref = _read_agg_mat("tourism_small")
    ref_keys = _tourism_small_keys(list(S_ref.index))
    df = _wide_to_long(wide, list(S_ref.columns), ref_keys)
    return Dataset(
        name="tourism_small",
        data=_finish(df, list(ref_keys.columns)),
        formula="purpose / state / city",
        freq="QS",
        season_length=4,
        description="Australian domestic visitor nights (thousands) by purpose, state and "
        "capital city / other, quarterly 1998 Q1-2006 Q4 (TourismSmall)",
        S_ref=S_ref,
        ref_keys=ref_keys,
    )


def _labour_keys(labels: list[str]) -> pd.DataFrame:
    """Key table for labour labels: stringified lists ``"['Total']"``, ``"['<state>']"``,
    ``"['<sex>', '<state>']"``, ``"['<status>', '<sex>', '<state>']"`` (most detailed first).

    Each key holds the shipped label of its level, list items joined by ``", "``: state
    ``"Victoria"``, sex ``"Females, Victoria"``, status ``"Employed full-time, Females,
    Victoria"``. A nested child must be unique across parents (``Hierarchy`` rejects a bare
    ``"Females"`` under 8 states), and the shipped labels already are.
    """
    rows = []
    for label in labels:
        try:
            parts = ast.literal_eval(label)
        except (ValueError, SyntaxError):
            parts = None
        if not isinstance(parts, list) or not 1 <= len(parts) <= 3:
            raise DataError(
                f"labour label {label!r} is not a stringified list of 1-3 names. "
                "Hint: the bundled labour files are damaged."
            )
        if parts == ["Total"]:
            parts = []
        names = [", ".join(parts[i:]) for i in range(len(parts) - 1, -1, -1)]
        names += [AGGREGATED] * (3 - len(parts))
        rows.append(names)
    return pd.DataFrame(rows, index=labels, columns=["state", "sex", "status"])


def load_labour() -> Dataset:
    """Monthly Australian employed persons by state, sex and full-/part-time status.

    32 bottom series (8 states x 2 sexes x 2 statuses) x 514 months (1978-02 - 2020-11),
    thousands of persons (ABS Labour Force, via Rangapuram et al. 2021). Keys ``state, sex,
    status`` hold the shipped label of their level (``"New South Wales"``,
    ``"Females, New South Wales"``, ``"Employed full-time, Females, New South Wales"``: a
    nested child must be unique across parents, and a bare ``"Females"`` is not); formula
    ``"state / sex / status"`` (57 nodes). ``S_ref`` is the shipped ``agg_mat.csv``
    (57 x 32), ``ref_keys`` maps its labels to the keys. The shipped
    matrix's column headers are scrambled (its identity block follows ``data.csv``'s bottom
    order, its headers do not); ``S_ref`` labels each column by the bottom row it selects.

    Returns
    -------
    Dataset
    """
    wide = _read_wide("labour")
    S_ref = _read_agg_mat("labour")
    ref_keys = _labour_keys(list(S_ref.index))
    df = _wide_to_long(wide, list(S_ref.columns), ref_keys)
    return Dataset(
        name="labour",
        data=_finish(df, list(ref_keys.columns)),
        formula="state / sex / status",
        freq="MS",
        season_length=12,
        description="Australian employed persons (thousands) by state, sex and full-/part-time "
        "status, monthly 1978-02-2020-11 (ABS, Rangapuram et al. 2021)",
        S_ref=S_ref,
        ref_keys=ref_keys,
    )
