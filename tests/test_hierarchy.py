"""Tests of the formula grammar, node enumeration, S, aggregation and input validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from htsforecast import DataError, FormulaError, Hierarchy, HierarchyError
from htsforecast._formula import parse_formula

DATES = pd.date_range("2020-01-01", periods=3, freq="MS")


def tiny_grouped() -> pd.DataFrame:
    """2 states x 2 counties x 2 floors, county b2 has no first-floor data."""
    rows = []
    for i, (state, county) in enumerate([("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b2")]):
        for j, floor in enumerate(["basement", "first"]):
            if (county, floor) == ("b2", "first"):
                continue
            for k, t in enumerate(DATES):
                rows.append(dict(state=state, county=county, floor=floor, ds=t, y=10 * i + j + k))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- formula grammar
@pytest.mark.parametrize(
    "formula, levels",
    [
        ("state / county", ["total", "state", "state/county"]),
        (
            "(state / county) * floor",
            ["total", "state", "floor", "state/county", "state/floor", "state/county/floor"],
        ),
        (
            "gender * legal * state",
            [
                "total",
                "gender",
                "legal",
                "state",
                "gender/legal",
                "gender/state",
                "legal/state",
                "gender/legal/state",
            ],
        ),
        (
            "(state / zone / region) * purpose",
            [
                "total",
                "state",
                "purpose",
                "state/zone",
                "state/purpose",
                "state/zone/region",
                "state/zone/purpose",
                "state/zone/region/purpose",
            ],
        ),
        (
            "state / (county * floor)",
            ["total", "state", "state/county", "state/floor", "state/county/floor"],
        ),
    ],
)
def test_formula_levels(formula: str, levels: list[str]) -> None:
    parsed = parse_formula(formula)
    names = ["/".join(lv) if lv else "total" for lv in parsed.levels]
    assert names == levels


def test_formula_nestings() -> None:
    parsed = parse_formula("(state / zone / region) * purpose")
    assert parsed.nestings == ((("state",), "zone"), (("state", "zone"), "region"))


@pytest.mark.parametrize(
    "formula, match",
    [
        ("state / county + floor", r"unexpected character '\+' at position 15"),
        ("(state / county * floor", r"unbalanced parenthesis: '\(' at position 0 is never closed"),
        (
            "state / county) * floor",
            r"unbalanced parenthesis: '\)' without a matching '\(' at position 14",
        ),
        ("state / / county", r"expected a column name or '\(' but found '/' at position 8"),
        ("state county", r"expected '/' or '\*' but found 'county' at position 6"),
        ("state * state", r"column\(s\) state appear twice at position 6"),
        ("", r"empty formula"),
        ("state /", r"expected a column name or '\(' at the end"),
    ],
)
def test_formula_errors(formula: str, match: str) -> None:
    with pytest.raises(FormulaError, match=match):
        Hierarchy.from_formula(formula)


def test_formula_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        Hierarchy.from_formula("a & b")


# ----------------------------------------------------------------------------- S, ids, levels
def test_literal_S_tiny_grouped() -> None:
    hier = Hierarchy.from_formula("(state / county) * floor")
    hier.aggregate(tiny_grouped(), freq="MS")
    b = [
        "state=A/county=a1/floor=basement",
        "state=A/county=a1/floor=first",
        "state=A/county=a2/floor=basement",
        "state=A/county=a2/floor=first",
        "state=B/county=b1/floor=basement",
        "state=B/county=b1/floor=first",
        "state=B/county=b2/floor=basement",
    ]
    expected = {
        "total": [1, 1, 1, 1, 1, 1, 1],
        "state=A": [1, 1, 1, 1, 0, 0, 0],
        "state=B": [0, 0, 0, 0, 1, 1, 1],
        "floor=basement": [1, 0, 1, 0, 1, 0, 1],
        "floor=first": [0, 1, 0, 1, 0, 1, 0],
        "state=A/county=a1": [1, 1, 0, 0, 0, 0, 0],
        "state=A/county=a2": [0, 0, 1, 1, 0, 0, 0],
        "state=B/county=b1": [0, 0, 0, 0, 1, 1, 0],
        "state=B/county=b2": [0, 0, 0, 0, 0, 0, 1],
        "state=A/floor=basement": [1, 0, 1, 0, 0, 0, 0],
        "state=A/floor=first": [0, 1, 0, 1, 0, 0, 0],
        "state=B/floor=basement": [0, 0, 0, 0, 1, 0, 1],
        "state=B/floor=first": [0, 0, 0, 0, 0, 1, 0],
    }
    for i, node in enumerate(b):
        expected[node] = [int(j == i) for j in range(7)]
    assert hier.node_ids == list(expected)
    assert hier.bottom_ids == b
    np.testing.assert_array_equal(hier.S.toarray(), np.array(list(expected.values())))
    assert hier.S.format == "csr"
    assert "state=B/county=b2/floor=first" not in hier.node_ids  # unbalanced: cell absent
    assert hier.levels["state/floor"] == [
        "state=A/floor=basement",
        "state=A/floor=first",
        "state=B/floor=basement",
        "state=B/floor=first",
    ]
    assert hier.level_of["floor=first"] == "floor"
    assert not hier.is_strict
    keys = hier.keys
    assert keys.loc["state=A/floor=first", "county"] == "<aggregated>"
    assert keys.loc["state=A/floor=first", "state"] == "A"
    assert keys.loc["total", "level"] == "total"


def test_aggregate_values_and_order() -> None:
    df = tiny_grouped()
    hier = Hierarchy.from_formula("(state / county) * floor")
    Y = hier.aggregate(df, freq="MS")
    assert list(Y.columns) == ["unique_id", "ds", "y"]
    assert Y["unique_id"].unique().tolist() == hier.node_ids
    total = Y[Y.unique_id == "total"].set_index("ds")["y"]
    pd.testing.assert_series_equal(
        total, df.groupby("ds")["y"].sum().astype(float), check_names=False
    )
    a_first = Y[Y.unique_id == "state=A/floor=first"]["y"].to_numpy()
    sub = df[(df.state == "A") & (df.floor == "first")].groupby("ds")["y"].sum().to_numpy()
    np.testing.assert_allclose(a_first, sub)


def test_strict_nested_and_nixtla_roundtrip() -> None:
    df = tiny_grouped().groupby(["state", "county", "ds"], as_index=False)["y"].sum()
    hier = Hierarchy.from_formula("state / county")
    hier.aggregate(df)
    assert hier.is_strict
    S_df, tags = hier.to_nixtla()
    assert list(S_df.columns) == ["unique_id", *hier.bottom_ids]
    assert list(tags) == ["total", "state", "state/county"]
    back = Hierarchy.from_nixtla(S_df, tags)
    assert back.node_ids == hier.node_ids
    assert (back.S != hier.S).nnz == 0
    assert back.is_strict


def test_from_nixtla_reorders_bottom_last_and_checks_tags() -> None:
    S_df = pd.DataFrame(
        {"unique_id": ["a", "b", "total"], "a": [1, 0, 1], "b": [0, 1, 1]},
    )
    hier = Hierarchy.from_nixtla(S_df, {"total": ["total"], "leaf": ["a", "b"]})
    assert hier.node_ids == ["total", "a", "b"]
    with pytest.raises(HierarchyError, match=r"node\(s\) total are in S_df but in no tag"):
        Hierarchy.from_nixtla(S_df, {"leaf": ["a", "b"]})


def test_matches_hierarchicalforecast_aggregate() -> None:
    hf_utils = pytest.importorskip("hierarchicalforecast.utils")
    df = tiny_grouped()
    hier = Hierarchy.from_formula("(state / county) * floor")
    ours = hier.aggregate(df, freq="MS")
    spec = [
        ["state"],
        ["floor"],
        ["state", "county"],
        ["state", "floor"],
        ["state", "county", "floor"],
    ]
    spec = [["total"]] + [["total", *lv] for lv in spec]
    Y_hf, S_hf, tags_hf = hf_utils.aggregate(df.assign(total="total"), spec)
    # map our ids to theirs: values joined by "/" in spec order
    keys = hier.keys
    to_hf = {
        node: "total"
        if row.level == "total"
        else "/".join(["total", *(row[c] for c in row.level.split("/"))])
        for node, row in keys.iterrows()
    }
    mapped = ours.assign(unique_id=ours.unique_id.map(to_hf))
    merged = mapped.merge(Y_hf, on=["unique_id", "ds"], suffixes=("", "_hf"))
    assert len(merged) == len(ours) == len(Y_hf)
    np.testing.assert_allclose(merged["y"], merged["y_hf"])
    S_hf = S_hf.set_index("unique_id")
    ours_S = pd.DataFrame(
        hier.S.toarray(),
        index=[to_hf[n] for n in hier.node_ids],
        columns=[to_hf[b] for b in hier.bottom_ids],
    )
    pd.testing.assert_frame_equal(
        ours_S.loc[S_hf.index, S_hf.columns], S_hf.astype(float), check_names=False
    )


# ----------------------------------------------------------------------------- validation
def test_missing_column() -> None:
    with pytest.raises(DataError, match=r"missing column\(s\) floor"):
        Hierarchy.from_formula("(state / county) * floor").aggregate(
            tiny_grouped().drop(columns="floor")
        )


def test_nan_key() -> None:
    df = tiny_grouped()
    df.loc[4, "county"] = None
    with pytest.raises(
        DataError, match=r"key column 'county' has 1 missing value\(s\), at row\(s\) 4"
    ):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df)


def test_duplicate_rows() -> None:
    df = pd.concat([tiny_grouped(), tiny_grouped().iloc[[2]]], ignore_index=True)
    with pytest.raises(
        DataError, match=r"2 rows share the same \(state, county, floor, ds\).*rows 2, 21"
    ):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df)


def test_non_numeric_and_nan_target() -> None:
    df = tiny_grouped()
    with pytest.raises(DataError, match=r"target column 'y' must be numeric, got dtype object"):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df.assign(y=df.y.astype(str)))
    df.loc[7, "y"] = np.nan
    with pytest.raises(
        DataError, match=r"target column 'y' has 1 NaN/inf value\(s\), at row\(s\) 7"
    ):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df)


def test_child_under_two_parents() -> None:
    df = tiny_grouped()
    df.loc[df.county == "b1", "county"] = "a1"  # same county code under states A and B
    with pytest.raises(
        HierarchyError,
        match=r"'county' is nested in \(state\) but county='a1' appears under 2 parents: "
        r"state=A, state=B",
    ):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df)


def test_dates_off_frequency() -> None:
    df = tiny_grouped()
    df.loc[df.ds == DATES[1], "ds"] = pd.Timestamp("2020-02-15")
    with pytest.raises(DataError, match=r"1 date\(s\) not on frequency 'MS': 2020-02-15"):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df, freq="MS")
    with pytest.raises(DataError, match=r"freq='XYZ' is not a valid pandas frequency"):
        Hierarchy.from_formula("(state / county) * floor").aggregate(tiny_grouped(), freq="XYZ")


def test_gaps_error_or_fill_zero() -> None:
    df = tiny_grouped()
    gap = (df.county == "a2") & (df.floor == "first") & (df.ds == DATES[1])
    with pytest.raises(
        DataError,
        match=r"1 \(series, date\) cell\(s\) are missing in 1 series, e.g. "
        r"state=A/county=a2/floor=first @ 2020-02-01.*fill='zero'",
    ):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df[~gap], freq="MS")
    hier = Hierarchy.from_formula("(state / county) * floor")
    Y = hier.aggregate(df[~gap], freq="MS", fill="zero").set_index(["unique_id", "ds"])["y"]
    full = Hierarchy.from_formula("(state / county) * floor").aggregate(df, freq="MS")
    full = full.set_index(["unique_id", "ds"])["y"]
    diff = (full - Y)[lambda s: s != 0]
    assert set(diff.index.get_level_values(0)) == {
        "total",
        "state=A",
        "floor=first",
        "state=A/county=a2",
        "state=A/floor=first",
        "state=A/county=a2/floor=first",
    }
    np.testing.assert_allclose(diff.to_numpy(), df.loc[gap, "y"].iloc[0])


def test_new_bottom_series_rejected() -> None:
    df = tiny_grouped()
    hier = Hierarchy.from_formula("(state / county) * floor")
    hier.aggregate(df[df.county != "b2"])
    with pytest.raises(HierarchyError, match=r"bottom series this Hierarchy was not built on: "):
        hier.aggregate(df)


def test_unfitted_hierarchy_error() -> None:
    with pytest.raises(HierarchyError, match=r"call hier.aggregate\(df\)"):
        _ = Hierarchy.from_formula("state / county").S


# ----------------------------------------------------------------------------- property test
formulas = st.sampled_from(
    ["a", "a / b", "a * b", "(a / b) * c", "a * b * c", "a / b / c", "a / (b * c)", "(a * b) / c"]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formula=formulas, data=st.data())
def test_aggregate_sums_along_every_path(formula: str, data: st.DataObject) -> None:
    """Every node equals the sum of the bottom rows whose keys match it, and S @ bottom == all."""
    parsed = parse_formula(formula)
    cols = parsed.columns
    n = data.draw(st.integers(1, 12))
    # child values are made unique per parent for nested columns: prefix with the parent path
    raw = data.draw(
        st.lists(st.tuples(*[st.sampled_from("xyz") for _ in cols]), min_size=n, max_size=n)
    )
    keys = pd.DataFrame(raw, columns=list(cols)).drop_duplicates()
    for parents, child in parsed.nestings:
        keys[child] = keys[list(parents)].astype(str).agg("".join, axis=1) + keys[child]
    T = 4
    vals = data.draw(st.lists(st.integers(-5, 50), min_size=len(keys) * T, max_size=len(keys) * T))
    df = keys.loc[keys.index.repeat(T)].reset_index(drop=True)
    df["ds"] = np.tile(pd.date_range("2021-01-01", periods=T, freq="D").to_numpy(), len(keys))
    df["y"] = np.asarray(vals, dtype=float)
    hier = Hierarchy.from_formula(formula)
    Y = hier.aggregate(df, freq="D")
    Ym = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids].to_numpy()
    bottom = Ym[-hier.n_bottom :]
    np.testing.assert_allclose(hier.S @ bottom, Ym)
    np.testing.assert_array_equal(hier.S[-hier.n_bottom :].toarray(), np.eye(hier.n_bottom))
    key_table = hier.keys
    for node in hier.node_ids:
        row = key_table.loc[node]
        mask = np.ones(len(df), dtype=bool)
        for c in cols:
            if row[c] != "<aggregated>":
                mask &= df[c].astype(str).to_numpy() == row[c]
        expected = df[mask].groupby("ds")["y"].sum()
        got = Y[Y.unique_id == node].set_index("ds")["y"]
        np.testing.assert_allclose(got.loc[expected.index].to_numpy(), expected.to_numpy())
        assert mask.any()  # only combinations that occur become nodes


def test_ambiguous_key_values_integer_dates_empty_and_mixed_keys() -> None:
    df = tiny_grouped()
    df.loc[0:2, "county"] = "a1/x"
    with pytest.raises(
        DataError, match=r"key column 'county' has value\(s\) containing '/' or '='"
    ):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df)
    df = tiny_grouped().assign(ds=lambda d: d.ds.dt.year * 100 + d.ds.dt.month)
    with pytest.raises(DataError, match=r"time column 'ds' holds numbers \(int"):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df)
    with pytest.raises(DataError, match=r"data has no rows"):
        Hierarchy.from_formula("(state / county) * floor").aggregate(tiny_grouped().iloc[:0])
    # 1 and "1" are the same label: one node, and their rows are then duplicates
    mixed = pd.DataFrame(
        {
            "a": [1, "1", 2],
            "ds": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-01-01"]),
            "y": [1.0, 2.0, 3.0],
        }
    )
    hier = Hierarchy.from_formula("a")
    Y = hier.aggregate(mixed, fill="zero")
    assert hier.node_ids == ["total", "a=1", "a=2"]
    assert Y.loc[Y.unique_id == "a=1", "y"].tolist() == [1.0, 2.0]
