"""Tests of the bundled table loaders (tourism, prison, tourism_large, tourism_small, labour).

Every value is checked against the shipped file read independently here, and every quirk named
in the data's SOURCE.md (zeros, ranges, label conventions, column orders) has a test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from htsforecast.datasets._base import AGGREGATED, Dataset, _data_path
from htsforecast.datasets._tables import (
    _labour_keys,
    _quarter_start,
    _tourism_large_keys,
    _tourism_small_keys,
    load_labour,
    load_prison,
    load_tourism,
    load_tourism_large,
    load_tourism_small,
)
from htsforecast.errors import DataError

LOADERS = [load_tourism, load_prison, load_tourism_large, load_tourism_small, load_labour]
# name, keys, n_bottom, n_periods, first ds, last ds, freq, season_length
SHAPES = {
    "tourism": (["state", "region", "purpose"], 304, 80, "1998-01-01", "2017-10-01", "QS", 4),
    "prison": (
        ["state", "gender", "legal", "indigenous"],
        64,
        48,
        "2005-01-01",
        "2016-10-01",
        "QS",
        4,
    ),
    "tourism_large": (
        ["state", "zone", "region", "purpose"],
        304,
        228,
        "1998-01-01",
        "2016-12-01",
        "MS",
        12,
    ),
    "labour": (["state", "sex", "status"], 32, 514, "1978-02-01", "2020-11-01", "MS", 12),
    "tourism_small": (["purpose", "state", "city"], 56, 36, "1998-01-01", "2006-10-01", "QS", 4),
}
#: The sets that ship a summing matrix (S_ref, ref_keys).
WITH_MATRIX = ["tourism_large", "tourism_small", "labour"]


@pytest.fixture(scope="module")
def loaded() -> dict[str, Dataset]:
    return {ds.name: ds for ds in (f() for f in LOADERS)}


# --------------------------------------------------------------------------- generic contract


@pytest.mark.parametrize("name", list(SHAPES))
def test_long_frame_contract(loaded, name):
    ds = loaded[name]
    keys, n_bottom, n_periods, first, last, freq, m = SHAPES[name]
    df = ds.data
    assert list(df.columns) == [*keys, "ds", "y"]
    assert ds.key_columns == keys
    assert all(df[k].map(type).eq(str).all() for k in keys)
    assert df["ds"].dtype == "datetime64[ns]"
    assert df["y"].dtype == "float64"
    assert not df.isna().any().any()
    assert (ds.n_bottom, ds.n_periods) == (n_bottom, n_periods)
    assert len(df) == n_bottom * n_periods  # every series complete
    assert not df.duplicated([*keys, "ds"]).any()
    assert (df["ds"].min(), df["ds"].max()) == (pd.Timestamp(first), pd.Timestamp(last))
    assert (ds.freq, ds.season_length) == (freq, m)
    # every ds lies on the frequency grid and the grid has no holes
    grid = pd.date_range(first, last, freq=freq)
    assert len(grid) == n_periods
    assert set(df["ds"]) == set(grid)
    # sorted by keys then ds
    assert df.equals(df.sort_values([*keys, "ds"]).reset_index(drop=True))


def test_dataset_is_frozen(loaded):
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded["tourism"].formula = "state"


def test_dataset_repr_and_identity_equality(loaded):
    ds = loaded["prison"]
    assert repr(ds) == (
        "Dataset(name='prison', formula='state * gender * legal * indigenous', freq='QS', "
        "season_length=4)"
    )
    assert ds == ds and ds != load_prison()  # identity: frames have no truth value
    assert {ds: 1}[ds] == 1


def test_formulas(loaded):
    assert loaded["tourism"].formula == "(state / region) * purpose"
    assert loaded["prison"].formula == "state * gender * legal * indigenous"
    assert loaded["tourism_large"].formula == "(state / zone / region) * purpose"
    assert loaded["labour"].formula == "state / sex / status"
    assert loaded["tourism_small"].formula == "purpose / state / city"


def test_data_path_is_bundled_not_shared():
    path = _data_path("tourism", "tourism.csv")
    assert path.is_file()
    assert "shared" not in path.parts
    assert path.parent.name == "tourism"
    assert path.parent.parent.name in ("data", "_data")


def test_data_path_missing_file_names_it():
    with pytest.raises(DataError, match=r"'tourism/nope\.csv' not found.*reinstall"):
        _data_path("tourism", "nope.csv")


# --------------------------------------------------------------------------- tourism


def test_tourism_values_and_quirks(loaded):
    ds = loaded["tourism"]
    raw = pd.read_csv(_data_path("tourism", "tourism.csv"))
    # rebuild the shipped "YYYY Qn" label from ds and join on the full key
    ours = ds.data.assign(
        Quarter=ds.data["ds"].dt.year.astype(str) + " Q" + ds.data["ds"].dt.quarter.astype(str)
    )
    assert (ours["ds"].dt.month == 3 * ours["ds"].dt.quarter - 2).all()  # quarter start
    merged = raw.merge(
        ours,
        left_on=["State", "Region", "Purpose", "Quarter"],
        right_on=["state", "region", "purpose", "Quarter"],
        how="outer",
        validate="one_to_one",
    )
    assert len(merged) == 24_320
    np.testing.assert_array_equal(merged["Trips"].to_numpy(), merged["y"].to_numpy())
    assert (ds.data["y"] == 0).sum() == 1547
    assert ds.data["y"].max() == pytest.approx(985.2784014)
    per_state = ds.data.groupby("state")["region"].nunique().to_dict()
    assert per_state == {
        "ACT": 1,
        "New South Wales": 13,
        "Northern Territory": 7,
        "Queensland": 12,
        "South Australia": 12,
        "Tasmania": 5,
        "Victoria": 21,
        "Western Australia": 5,
    }
    # region names are unique across states (the nesting state / region is strict)
    assert ds.data.groupby("region")["state"].nunique().max() == 1
    assert sorted(ds.data["purpose"].unique()) == ["Business", "Holiday", "Other", "Visiting"]


def test_quarter_labels_are_validated():
    got = _quarter_start(pd.Series(["1998 Q1", "2017 Q4"]))
    assert list(got) == [pd.Timestamp("1998-01-01"), pd.Timestamp("2017-10-01")]
    with pytest.raises(DataError, match=r"'Quarter'.*'1998Q5'.*row 1"):
        _quarter_start(pd.Series(["1998 Q1", "1998Q5"]))


# --------------------------------------------------------------------------- prison


def test_prison_values_and_quirks(loaded):
    ds = loaded["prison"]
    raw = pd.read_csv(_data_path("prison", "prison_population.csv"), parse_dates=["date"])
    # the file dates a quarter by its last month; ours by its first day: two months earlier
    assert set(raw["date"].dt.month) == {3, 6, 9, 12}
    raw["ds"] = raw["date"] - pd.DateOffset(months=2)
    keys = ["state", "gender", "legal", "indigenous"]
    merged = raw.merge(ds.data, on=[*keys, "ds"], how="outer", validate="one_to_one")
    assert len(merged) == 3072
    np.testing.assert_array_equal(merged["count"].to_numpy(dtype=float), merged["y"].to_numpy())
    assert (ds.data["y"] == 0).sum() == 33
    total = ds.data.groupby("ds")["y"].sum()
    assert (total.min(), total.max()) == (24_296, 39_526)
    assert ds.data[keys].nunique().to_dict() == {
        "state": 8,
        "gender": 2,
        "legal": 2,
        "indigenous": 2,
    }
    assert set(ds.data["legal"]) == {"Remanded", "Sentenced"}  # no fpp2 "Remamded" typo
    assert set(ds.data["indigenous"]) == {"ATSI", "Non-ATSI"}


# --------------------------------------------------------------------------- S_ref benchmarks


def _mask_matrix(ds: Dataset) -> pd.DataFrame:
    """0/1 matrix built from ref_keys alone: node label x bottom label, 1 where the bottom
    series matches every non-aggregated key of the node."""
    keys = ds.ref_keys
    bottom = keys.loc[ds.S_ref.columns]
    out = np.ones((len(keys), len(bottom)), dtype=bool)
    for col in keys.columns:
        node_val = keys[col].to_numpy()[:, None]
        out &= (node_val == AGGREGATED) | (node_val == bottom[col].to_numpy()[None, :])
    return pd.DataFrame(out.astype(float), index=keys.index, columns=bottom.index)


def _shipped_wide(name: str) -> pd.DataFrame:
    wide = pd.read_csv(_data_path(name, "data.csv"), index_col=0, parse_dates=True)
    if name == "tourism_small":  # shipped as quarter ends (1998-03-31); ds is the quarter start
        wide.index = wide.index.to_period("Q").to_timestamp()
    return wide


@pytest.mark.parametrize("name", WITH_MATRIX)
def test_ref_keys_reproduce_shipped_matrix(loaded, name):
    ds = loaded[name]
    assert list(ds.ref_keys.index) == list(ds.S_ref.index)
    assert set(ds.S_ref.columns) <= set(ds.S_ref.index)
    pd.testing.assert_frame_equal(_mask_matrix(ds), ds.S_ref, check_names=False)
    # bottom labels are exactly the fully specified ones
    full = (ds.ref_keys != AGGREGATED).all(axis=1)
    assert set(ds.ref_keys.index[full]) == set(ds.S_ref.columns)


@pytest.mark.parametrize("name", WITH_MATRIX)
def test_bottom_values_sum_to_shipped_aggregates(loaded, name):
    ds = loaded[name]
    wide = _shipped_wide(name)
    assert list(wide.columns) == list(ds.S_ref.index)
    # our long bottom data, pivoted back to the shipped bottom labels via ref_keys
    keys = ds.key_columns
    label_of = {tuple(row): label for label, row in ds.ref_keys.loc[ds.S_ref.columns].iterrows()}
    labels = [label_of[k] for k in zip(*(ds.data[c] for c in keys))]
    ours = ds.data.assign(label=labels).pivot(index="ds", columns="label", values="y")
    ours = ours.loc[wide.index, ds.S_ref.columns]
    np.testing.assert_array_equal(ours.to_numpy(), wide[ds.S_ref.columns].to_numpy())
    # every shipped aggregate column is the sum of our bottom values it covers
    agg = ours.to_numpy() @ _mask_matrix(ds).to_numpy().T
    np.testing.assert_allclose(agg, wide.to_numpy(), rtol=1e-12, atol=1e-9)


def test_tourism_large_labels(loaded):
    ds = loaded["tourism_large"]
    k = ds.ref_keys
    assert ds.S_ref.shape == (555, 304)
    assert k.loc["TotalAll"].eq(AGGREGATED).all()
    assert list(k.loc["ABAll"]) == ["A", "AB", AGGREGATED, AGGREGATED]
    assert list(k.loc["TotalHol"]) == [AGGREGATED, AGGREGATED, AGGREGATED, "Hol"]
    assert list(k.loc["BDFVis"]) == ["B", "BD", "BDF", "Vis"]
    bottom = ds.data
    assert bottom[["state", "zone", "region"]].nunique().tolist() == [7, 27, 76]
    assert sorted(bottom["purpose"].unique()) == ["Bus", "Hol", "Oth", "Vis"]
    # zone and region codes carry their parents' codes, so each has exactly one parent
    assert (bottom["zone"].str[0] == bottom["state"]).all()
    assert (bottom["region"].str[:2] == bottom["zone"]).all()
    assert ds.data["y"].min() == 0.0


def test_tourism_large_bad_label():
    with pytest.raises(DataError, match=r"'ABCDHol'.*tourism_large"):
        _tourism_large_keys(["TotalAll", "ABCDHol"])
    with pytest.raises(DataError, match=r"'AXyz'"):
        _tourism_large_keys(["AXyz"])


def test_tourism_small_labels(loaded):
    ds = loaded["tourism_small"]
    k = ds.ref_keys
    assert ds.S_ref.shape == (89, 56)
    assert k.loc["total"].eq(AGGREGATED).all()
    assert list(k.loc["vfr"]) == ["vfr", AGGREGATED, AGGREGATED]
    assert list(k.loc["qld-bus"]) == ["bus", "qld", AGGREGATED]
    assert list(k.loc["nt-oth-noncity"]) == ["oth", "nt", "noncity"]
    bottom = ds.data
    assert bottom[["purpose", "state", "city"]].nunique().tolist() == [4, 7, 2]
    assert bottom["y"].min() == 7.0  # SOURCE.md: integer values, minimum 7
    assert (bottom["y"] == bottom["y"].round()).all()
    # the first shipped row is 1998-03-31 (a quarter end) and becomes the quarter start
    raw = pd.read_csv(_data_path("tourism_small", "data.csv"), index_col=0)
    assert raw.index[0] == "1998-03-31"
    first = bottom[(bottom["purpose"] == "hol") & (bottom["state"] == "nsw")
                   & (bottom["city"] == "city")].iloc[0]  # fmt: skip
    assert (first["ds"], first["y"]) == (pd.Timestamp("1998-01-01"), raw["nsw-hol-city"].iloc[0])


@pytest.mark.parametrize("label", ["nsw", "hol-nsw", "nsw-hol-town", "nsw-hol-city-x", "tot"])
def test_tourism_small_bad_label(label):
    with pytest.raises(DataError, match=rf"TourismSmall label '{label}'.*tourism_small"):
        _tourism_small_keys(["total", label])


def test_labour_labels(loaded):
    ds = loaded["labour"]
    k = ds.ref_keys
    assert ds.S_ref.shape == (57, 32)
    assert k.loc["['Total']"].eq(AGGREGATED).all()
    assert list(k.loc["['Females', 'Tasmania']"]) == ["Tasmania", "Females, Tasmania", AGGREGATED]
    assert list(k.loc["['Employed part-time', 'Males', 'Victoria']"]) == [
        "Victoria",
        "Males, Victoria",
        "Employed part-time, Males, Victoria",
    ]
    # S_ref's columns follow data.csv's last 32 columns (see the scrambled-header test)
    assert list(_shipped_wide("labour").columns[-32:]) == list(ds.S_ref.columns)
    assert ds.data[["state", "sex", "status"]].nunique().tolist() == [8, 16, 32]
    # each child value names its parents, so it sits under exactly one parent
    assert (ds.data["sex"].str.split(", ").str[1] == ds.data["state"]).all()
    assert (ds.data["status"].str.split(", ", n=1).str[1] == ds.data["sex"]).all()
    assert set(ds.data["sex"].str.split(", ").str[0]) == {"Females", "Males"}
    assert set(ds.data["status"].str.split(", ").str[0]) == {
        "Employed full-time",
        "Employed part-time",
    }
    assert ds.data["y"].min() == pytest.approx(0.9324438)


def test_labour_shipped_column_headers_are_scrambled(loaded):
    """Quirk: labour's agg_mat.csv headers do not name the columns' series. Its identity block
    (last 32 rows) ties column j to data.csv's j-th bottom column; read by header, the matrix
    would not reproduce data.csv. S_ref relabels the columns by the identity block."""
    shipped = pd.read_csv(_data_path("labour", "agg_mat.csv"), index_col=0)
    wide = _shipped_wide("labour")
    np.testing.assert_array_equal(shipped.to_numpy()[-32:], np.eye(32))
    right = sum(h == r for h, r in zip(shipped.columns, shipped.index[-32:]))
    assert right == 2  # only 2 of 32 headers name the series they select
    by_header = wide[shipped.columns].to_numpy() @ shipped.to_numpy().T
    assert np.abs(by_header - wide.to_numpy()).max() > 1000
    by_row = wide[shipped.index[-32:]].to_numpy() @ shipped.to_numpy().T
    np.testing.assert_allclose(by_row, wide.to_numpy(), rtol=1e-12, atol=1e-9)
    ds = loaded["labour"]
    assert list(ds.S_ref.columns) == list(shipped.index[-32:])
    np.testing.assert_array_equal(ds.S_ref.to_numpy(), shipped.to_numpy())


def test_tourism_large_shipped_headers_match_rows():
    shipped = pd.read_csv(_data_path("tourism_large", "agg_mat.csv"), index_col=0)
    assert list(shipped.columns) == list(shipped.index[-304:])


def test_labour_bad_label():
    with pytest.raises(DataError, match=r"labour label 'Total'"):
        _labour_keys(["Total"])
    with pytest.raises(DataError, match=r"labour label"):
        _labour_keys(["['a', 'b', 'c', 'd']"])


def test_loaders_are_deterministic():
    a, b = load_labour(), load_labour()
    pd.testing.assert_frame_equal(a.data, b.data)
    assert Path(_data_path("labour", "data.csv")).stat().st_size > 0


# --------------------------------------------------------------------------- via Hierarchy


@pytest.fixture(scope="module")
def aggregated(loaded) -> dict[str, tuple]:
    """name -> (hier, Y) from Dataset.hierarchy() (Hierarchy.from_formula + aggregate)."""
    return {name: ds.hierarchy() for name, ds in loaded.items()}


def _label_to_node(ds: Dataset, hier) -> pd.Series:
    """Shipped label -> our node id, matched on key values (both use AGGREGATED)."""
    ours = hier.keys[ds.key_columns]
    by_keys = {tuple(row): node for node, row in zip(ours.index, ours.to_numpy())}
    return pd.Series(
        [by_keys[tuple(row)] for row in ds.ref_keys.to_numpy()], index=ds.ref_keys.index
    )


@pytest.mark.parametrize(
    ("name", "n_nodes", "n_bottom"),
    [("tourism_large", 555, 304), ("tourism_small", 89, 56), ("labour", 57, 32)],
)
def test_hierarchy_reproduces_shipped_matrix(loaded, aggregated, name, n_nodes, n_bottom):
    """Acceptance: our S equals the shipped agg_mat.csv exactly after mapping labels."""
    ds = loaded[name]
    hier, _ = aggregated[name]
    assert hier.S.shape == (n_nodes, n_bottom)
    to_node = _label_to_node(ds, hier)
    assert to_node.is_unique and set(to_node) == set(hier.node_ids)  # a bijection of nodes
    ours = pd.DataFrame(hier.S.toarray(), index=hier.node_ids, columns=hier.bottom_ids)
    mapped = ours.loc[to_node.loc[ds.S_ref.index], to_node.loc[ds.S_ref.columns]]
    np.testing.assert_array_equal(mapped.to_numpy(), ds.S_ref.to_numpy())
    # and against the file itself, not only the loader's relabelled copy
    shipped = pd.read_csv(_data_path(name, "agg_mat.csv"), index_col=0)
    bottom_rows = to_node.loc[shipped.index[-n_bottom:]]  # the identity block fixes columns
    np.testing.assert_array_equal(
        ours.loc[to_node.loc[shipped.index], bottom_rows].to_numpy(), shipped.to_numpy()
    )


@pytest.mark.parametrize("name", WITH_MATRIX)
def test_hierarchy_aggregates_equal_shipped_data(loaded, aggregated, name):
    ds = loaded[name]
    hier, Y = aggregated[name]
    wide = _shipped_wide(name)
    to_node = _label_to_node(ds, hier)
    ours = Y.pivot(index="ds", columns="unique_id", values="y")
    ours = ours.loc[wide.index, to_node.loc[wide.columns]]
    np.testing.assert_allclose(ours.to_numpy(), wide.to_numpy(), rtol=1e-12, atol=1e-9)


def _nixtla_id(row: pd.Series) -> str:
    return "/".join(["total", *(v for v in row if v != AGGREGATED)])


def test_tourism_matches_hierarchicalforecast(loaded, aggregated):
    """Acceptance: the same 425 series, values and S as hierarchicalforecast.utils.aggregate."""
    from hierarchicalforecast.utils import aggregate

    ds = loaded["tourism"]
    hier, Y = aggregated["tourism"]
    spec = [
        ["total"],
        ["total", "state"],
        ["total", "purpose"],
        ["total", "state", "region"],
        ["total", "state", "purpose"],
        ["total", "state", "region", "purpose"],
    ]
    Y_nx, S_nx, tags = aggregate(ds.data.assign(total="total"), spec)
    assert hier.n_nodes == Y_nx["unique_id"].nunique() == 425
    keys = hier.keys[ds.key_columns]
    to_nx = pd.Series([_nixtla_id(r) for _, r in keys.iterrows()], index=keys.index)
    assert to_nx.is_unique and set(to_nx) == set(Y_nx["unique_id"])
    # values: every node, every quarter
    ours = Y.assign(unique_id=Y["unique_id"].map(to_nx))
    merged = ours.merge(Y_nx, on=["unique_id", "ds"], how="outer", validate="one_to_one")
    assert len(merged) == 425 * 80
    np.testing.assert_allclose(merged["y_x"], merged["y_y"], rtol=1e-12, atol=1e-9)
    # S: same 0/1 pattern after mapping row and column ids
    S_nx = S_nx.set_index("unique_id")
    ours_S = pd.DataFrame(
        hier.S.toarray(), index=to_nx.loc[hier.node_ids], columns=to_nx.loc[hier.bottom_ids]
    )
    np.testing.assert_array_equal(ours_S.loc[S_nx.index, S_nx.columns].to_numpy(), S_nx.to_numpy())
    # levels: same sizes as the Nixtla tags (1 + 8 + 4 + 76 + 32 + 304)
    sizes = {lvl: len(ids) for lvl, ids in hier.levels.items()}
    assert sizes == {
        "total": 1,
        "state": 8,
        "purpose": 4,
        "state/region": 76,
        "state/purpose": 32,
        "state/region/purpose": 304,
    }
    assert sorted(len(v) for v in tags.values()) == sorted(sizes.values())


def test_prison_hierarchy_is_full_crossing(aggregated, loaded):
    hier, Y = aggregated["prison"]
    assert hier.n_nodes == 9 * 3 * 3 * 3 == 243
    assert not hier.is_strict
    # the total equals the national sum of the file, quarter by quarter
    raw = pd.read_csv(_data_path("prison", "prison_population.csv"))
    total = Y[Y["unique_id"] == "total"]["y"].to_numpy()
    np.testing.assert_array_equal(total, raw.groupby("date")["count"].sum().to_numpy())


def test_tourism_act_state_equals_canberra(aggregated):
    """Quirk: ACT has one region, so state=ACT duplicates region=Canberra."""
    _, Y = aggregated["tourism"]
    act = Y[Y["unique_id"] == "state=ACT"]["y"].to_numpy()
    cbr = Y[Y["unique_id"].str.startswith("state=ACT/region=Canberra/")]
    np.testing.assert_allclose(act, cbr.groupby("ds")["y"].sum().to_numpy(), rtol=1e-12)


def test_labour_with_bare_child_labels_gives_the_same_hierarchy(loaded):
    """A bare 'Females' under 8 states is 8 nodes: nesting identifies a child by its parents."""
    from htsforecast.hierarchy import Hierarchy

    df = loaded["labour"].data.copy()
    prefixed = Hierarchy.from_formula("state / sex / status")
    Yp = prefixed.aggregate(df, freq="MS")
    df["sex"] = df["sex"].str.split(", ").str[0]
    bare = Hierarchy.from_formula("state / sex / status")
    Yb = bare.aggregate(df, freq="MS")
    assert {k: len(v) for k, v in bare.levels.items()} == {
        k: len(v) for k, v in prefixed.levels.items()
    }
    assert (bare.S != prefixed.S).nnz == 0
    np.testing.assert_array_equal(Yb["y"].to_numpy(), Yp["y"].to_numpy())


def test_load_dataset_by_name(loaded):
    from htsforecast.datasets import DATASETS, load_dataset

    assert set(loaded) <= set(DATASETS)
    pd.testing.assert_frame_equal(load_dataset("prison").data, loaded["prison"].data)
    with pytest.raises(DataError, match=r"unknown data set 'tourismm'.*tourism_large"):
        load_dataset("tourismm")


def test_public_names():
    import htsforecast.datasets as hd

    for name in hd.__all__:
        assert hasattr(hd, name), name
    assert hd.load_radon_panel is not None and callable(hd.load_radon_survey)
