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


def test_same_child_label_under_two_parents_is_two_nodes() -> None:
    """fable's grammar: in ``state / county`` a county is identified by its state too."""
    df = tiny_grouped()
    df.loc[df.county == "b1", "county"] = "a1"  # same county label under states A and B
    hier = Hierarchy.from_formula("(state / county) * floor")
    Y = hier.aggregate(df).set_index(["unique_id", "ds"])["y"]
    assert {"state=A/county=a1", "state=B/county=a1"} <= set(hier.levels["state/county"])
    assert hier.is_strict is False  # grouped (crossed with floor), but nesting is intact
    sub = df[(df.state == "B") & (df.county == "a1")].groupby("ds")["y"].sum()
    np.testing.assert_allclose(Y.loc["state=B/county=a1"].to_numpy(), sub.to_numpy())
    nested = Hierarchy.from_formula("state / county")
    nested.aggregate(df.groupby(["state", "county", "ds"], as_index=False)["y"].sum())
    assert nested.is_strict


def test_real_radon_survey_every_county_floor_of_every_state_is_a_node() -> None:
    """Gelman & Hill's SRRS2 survey with its raw county names (ADAMS is in IN, ND and PA)."""
    from htsforecast.datasets._base import _data_path

    raw = pd.read_csv(_data_path("radon", "srrs2.dat"), skipinitialspace=True, dtype=str)
    raw.columns = raw.columns.str.strip()
    raw = raw.apply(lambda c: c.str.strip())
    raw = raw.dropna(subset=["state2", "county"])
    raw = raw[raw["floor"].isin(["0", "1"]) & (raw["county"] != "")]
    df = (
        raw.assign(state=raw["state2"], floor=raw["floor"].map({"0": "basement", "1": "first"}))
        .groupby(["state", "county", "floor"], as_index=False)
        .size()
        .rename(columns={"size": "y"})
        .assign(ds=pd.Timestamp("1988-01-01"))
    )
    hier = Hierarchy.from_formula("(state / county) * floor")
    Y = hier.aggregate(df)
    pairs = df[["state", "county"]].drop_duplicates()
    assert hier.n_bottom == len(df)
    assert len(hier.levels["state/county"]) == len(pairs)
    assert (pairs["county"] == "ADAMS").sum() == 3
    assert {f"state={s}/county=ADAMS" for s in ("IN", "ND", "PA")} <= set(hier.node_ids)
    total = Y.loc[Y.unique_id == "total", "y"].item()
    assert total == df["y"].sum() == len(raw)


def test_key_spelling_is_kept_and_never_merged() -> None:
    df = pd.DataFrame(
        {
            "state": ["01", "1", "01", "1"],
            "county": ["007", "7", "007", "7"],
            "ds": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-02-01", "2020-02-01"]),
            "y": [1.0, 2.0, 3.0, 4.0],
        }
    )
    hier = Hierarchy.from_formula("state / county")
    Y = hier.aggregate(df)
    assert hier.bottom_ids == ["state=01/county=007", "state=1/county=7"]
    assert Y.loc[Y.unique_id == "state=01", "y"].tolist() == [1.0, 3.0]
    assert hier.keys.loc["state=01/county=007", "county"] == "007"


def test_key_column_named_like_an_output_column_is_refused() -> None:
    df = tiny_grouped().rename(columns={"floor": "level"})
    with pytest.raises(HierarchyError, match=r"key column\(s\) \['level'\] clash"):
        Hierarchy.from_formula("(state / county) * level").aggregate(df)


def test_empty_key_value_is_missing() -> None:
    df = tiny_grouped()
    df.loc[3, "county"] = ""
    with pytest.raises(
        DataError, match=r"key column 'county' has 1 empty value\(s\), at row\(s\) 3"
    ):
        Hierarchy.from_formula("(state / county) * floor").aggregate(df)


def test_ragged_histories_late_start_and_early_end() -> None:
    from htsforecast.errors import DataWarning

    df = tiny_grouped()
    late = (df.county == "a2") & (df.floor == "first")
    early = (df.county == "b1") & (df.floor == "basement")
    ragged = df[~(late & (df.ds == DATES[0])) & ~(early & (df.ds == DATES[-1]))]
    hier = Hierarchy.from_formula("(state / county) * floor")
    with pytest.warns(DataWarning, match=r"1 bottom series end before the last date.*closed"):
        Y = hier.aggregate(ragged, freq="MS")
    starts = Y.groupby("unique_id")["ds"].min()
    assert starts["state=A/county=a2/floor=first"] == DATES[1]  # absent before its first row
    assert starts["total"] == DATES[0]
    closed = Y[Y.unique_id == "state=B/county=b1/floor=basement"].set_index("ds")["y"]
    assert closed.loc[DATES[-1]] == 0.0  # closed: 0 after its last row
    expected = ragged.groupby("ds")["y"].sum()
    np.testing.assert_allclose(
        Y[Y.unique_id == "total"].set_index("ds")["y"].loc[expected.index], expected
    )
    # coherence where every node is present
    Ym = Y.pivot(index="unique_id", columns="ds", values="y").loc[hier.node_ids]
    full = Ym.fillna(0.0).to_numpy()
    np.testing.assert_allclose(hier.S @ full[-hier.n_bottom :], full)
    # a hole inside a span is still a gap
    holed = df[~(late & (df.ds == DATES[1]))]
    with pytest.raises(DataError, match=r"1 \(series, date\) cell\(s\) are missing"):
        Hierarchy.from_formula("(state / county) * floor").aggregate(holed, freq="MS")


def test_overflow_names_the_nodes() -> None:
    df = tiny_grouped().assign(y=1e308)
    with pytest.raises(DataError, match=r"overflows float64 at node\(s\) total"):
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
    # repeated child labels under different parents are different nodes (no prefixing needed)
    keys = pd.DataFrame(raw, columns=list(cols)).drop_duplicates()
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
    # 1 and "1" print the same: an error naming both, never a silent merge
    mixed = pd.DataFrame(
        {
            "a": [1, "1", 2],
            "ds": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-01-01"]),
            "y": [1.0, 2.0, 3.0],
        }
    )
    with pytest.raises(
        DataError, match=r"key column 'a' has different values that print the same: 1, '1'"
    ):
        Hierarchy.from_formula("a").aggregate(mixed, fill="zero")
