"""hierarchicalforecast drop-in: its reconciler objects, its frames and its column names."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from htsforecast import ReconciliationError, reconcile
from htsforecast.reconciliation import MinTrace as OurMinTrace

hf_methods = pytest.importorskip("hierarchicalforecast.methods")
hf_core = pytest.importorskip("hierarchicalforecast.core")
hf_utils = pytest.importorskip("hierarchicalforecast.utils")

H, Z80 = 6, 1.2815515655446004
REGIONS = [
    ("AU", "NSW", "Sydney"),
    ("AU", "NSW", "Hunter"),
    ("AU", "VIC", "Melbourne"),
    ("AU", "VIC", "Geelong"),
    ("AU", "QLD", "Brisbane"),
]


def _nixtla_case(spec_cols=("Country", "State", "Region"), grouped=False):
    """Frames exactly as a hierarchicalforecast user has them (its own ``aggregate``)."""
    rng = np.random.default_rng(1)
    ds = pd.date_range("2018-01-01", periods=36, freq="MS")
    rows = []
    for c, s, r in REGIONS:
        for purpose in ["Business", "Holiday"] if grouped else ["All"]:
            y = 100 + 10 * np.sin(np.arange(36) / 2) + rng.normal(0, 3, 36).cumsum()
            rows.append(
                pd.DataFrame(
                    {"Country": c, "State": s, "Region": r, "Purpose": purpose, "ds": ds, "y": y}
                )
            )
    df = pd.concat(rows, ignore_index=True)
    spec = [list(spec_cols[: k + 1]) for k in range(len(spec_cols))]
    if grouped:
        spec = [["Country"], ["Country", "Purpose"], ["Country", "State"],
                ["Country", "State", "Purpose"], ["Country", "State", "Region", "Purpose"]]  # fmt: skip
    Y_df, S_df, tags = hf_utils.aggregate(df, spec)
    wide = Y_df.pivot(index="unique_id", columns="ds", values="y").loc[S_df["unique_id"]]
    fitted = wide.shift(1, axis=1) * (1 + 0.03 * rng.normal(size=wide.shape))
    fc = np.tile(wide.iloc[:, -1:].to_numpy(), H) * (1 + 0.05 * rng.normal(size=(len(wide), H)))
    sd = np.nanstd((wide - fitted).to_numpy(), axis=1)[:, None] * np.sqrt(np.arange(1, H + 1))
    fds = pd.date_range(ds[-1], periods=H + 1, freq="MS")[1:]
    Y_hat_df = pd.DataFrame(
        {
            "unique_id": np.repeat(wide.index, H),
            "ds": np.tile(fds, len(wide)),
            "AutoETS": fc.ravel(),
        }
    )
    z = {80: Z80, 95: 1.959963984540054}
    for col in ["lo-95", "lo-80", "hi-80", "hi-95"]:  # statsforecast's column order
        side, lv = col.split("-")
        Y_hat_df[f"AutoETS-{col}"] = (fc + (1 if side == "hi" else -1) * z[int(lv)] * sd).ravel()
    long_fit = fitted.stack(future_stack=True).rename("AutoETS").reset_index()
    Y_fit = Y_df.merge(long_fit, on=["unique_id", "ds"]).dropna()
    return Y_hat_df, Y_fit, S_df, tags


def _hf_reconcilers(with_intervals: bool):
    # hierarchicalforecast has no normality intervals for forecast proportions
    fp = [] if with_intervals else [
        hf_methods.TopDown(method="forecast_proportions"),
        hf_methods.MiddleOut(middle_level="Country/State", top_down_method="forecast_proportions"),
    ]  # fmt: skip
    return [
        hf_methods.BottomUp(),
        *fp,
        hf_methods.TopDown(method="average_proportions"),
        hf_methods.MinTrace(method="ols"),
        hf_methods.MinTrace(method="wls_struct"),
        hf_methods.MinTrace(method="mint_shrink"),
        hf_methods.MinTrace(method="wls_var"),
        # its MinTraceSparse solves iteratively (to ~1e-5), so only the exact sparse class here
        hf_methods.BottomUpSparse(),
    ]


@pytest.mark.parametrize("level", [None, [80, 95]])
def test_hf_reconcilers_translate_and_wide_matches_hf_column_by_column(level) -> None:
    Y_hat_df, Y_df, S_df, tags = _nixtla_case()
    if level is None:
        Y_hat_df = Y_hat_df[["unique_id", "ds", "AutoETS"]]
    methods = _hf_reconcilers(with_intervals=level is not None)
    ours = reconcile(Y_hat_df, methods=methods, Y_df=Y_df, S_df=S_df, tags=tags, level=level)
    ours = ours.wide(naming="hierarchicalforecast")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {"level": level, "intervals_method": "normality"} if level else {}
        theirs = hf_core.HierarchicalReconciliation(methods).reconcile(
            Y_hat_df=Y_hat_df, Y_df=Y_df, S_df=S_df, tags=tags, **kw
        )
    assert list(ours.columns) == list(theirs.columns)  # same names, same order
    if level:
        assert "AutoETS/MinTrace_method-mint_shrink-lo-95" in theirs.columns
    else:
        assert (
            "AutoETS/MiddleOut_middle_level-Country/State_top_down_method-forecast_proportions"
            in theirs.columns
        )
    ours = ours.set_index(["unique_id", "ds"]).loc[theirs.set_index(["unique_id", "ds"]).index]
    theirs = theirs.set_index(["unique_id", "ds"])
    for col in theirs.columns:
        np.testing.assert_allclose(ours[col], theirs[col], rtol=1e-7, atol=1e-7, err_msg=col)


def test_unsupported_hf_reconcilers_are_rejected_naming_ours() -> None:
    Y_hat_df, Y_df, S_df, tags = _nixtla_case()
    for method, what in [
        (hf_methods.ERM(method="closed"), "ERM"),
        (hf_methods.MinTrace(method="emint"), r"MinTrace\(method='emint'\)"),
    ]:
        with pytest.raises(
            ReconciliationError, match=rf"{what} has no htsforecast equivalent.*MinTrace"
        ):
            reconcile(Y_hat_df, methods=[method], Y_df=Y_df, S_df=S_df, tags=tags)


def test_y_df_without_the_models_fitted_values_names_the_model() -> None:
    Y_hat_df, Y_df, S_df, tags = _nixtla_case()
    no_fit = Y_df.drop(columns="AutoETS")
    with pytest.raises(ReconciliationError, match="Y_df lacks fitted values for model 'AutoETS'"):
        reconcile(Y_hat_df, methods=[hf_methods.MinTrace(method="mint_shrink")],
                  Y_df=no_fit, S_df=S_df, tags=tags)  # fmt: skip
    with pytest.raises(ReconciliationError, match="Y_df lacks fitted values for model 'AutoETS'"):
        reconcile(Y_hat_df, methods={"w": OurMinTrace("wls_var")}, S_df=S_df, tags=tags)
    # methods that need no residuals still work without fitted values
    rec = reconcile(Y_hat_df, methods=[hf_methods.BottomUp()], Y_df=no_fit, S_df=S_df, tags=tags)
    assert "AutoETS/BottomUp" in rec.wide(naming="hierarchicalforecast").columns


def test_topdown_on_grouped_nixtla_tags_lists_the_tag_names() -> None:
    Y_hat_df, Y_df, S_df, tags = _nixtla_case(grouped=True)
    with pytest.raises(ReconciliationError, match=r"path=.*Country/State/Region/Purpose"):
        reconcile(Y_hat_df, methods=[hf_methods.TopDown(method="forecast_proportions")],
                  Y_df=Y_df, S_df=S_df, tags=tags, intervals=None)  # fmt: skip


def test_wide_naming_is_checked() -> None:
    Y_hat_df, Y_df, S_df, tags = _nixtla_case()
    rec = reconcile(Y_hat_df, methods=[hf_methods.BottomUp()], Y_df=Y_df, S_df=S_df, tags=tags)
    with pytest.raises(ReconciliationError, match="naming must be"):
        rec.wide(naming="nixtla")


def test_hf_nonnegative_mintrace_translates_to_the_exact_nnls_optimum() -> None:
    """hierarchicalforecast's nonnegative MinTrace is translated, but the numbers differ: ours
    is the exact optimum (checked with scipy's NNLS), its own has a larger objective here."""
    from scipy.optimize import nnls

    Y_hat_df, Y_df, S_df, tags = _nixtla_case()
    Y_hat_df = Y_hat_df[["unique_id", "ds", "AutoETS"]].copy()
    Y_hat_df.loc[Y_hat_df["unique_id"].str.endswith("Geelong"), "AutoETS"] = -30.0
    methods = [hf_methods.MinTrace(method="ols", nonnegative=True)]
    ours = reconcile(Y_hat_df, methods=methods, S_df=S_df, tags=tags, intervals=None)
    col = "AutoETS/MinTrace_method-ols_nonnegative-True"
    wide = ours.wide(naming="hierarchicalforecast")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = hf_core.HierarchicalReconciliation(methods).reconcile(
            Y_hat_df=Y_hat_df, Y_df=Y_df, S_df=S_df, tags=tags
        )
    ids = list(S_df["unique_id"])
    S = S_df.drop(columns="unique_id").to_numpy(float)

    def mat(df, c):
        return df.pivot(index="unique_id", columns="ds", values=c).loc[ids].to_numpy()

    yhat = mat(Y_hat_df, "AutoETS")
    exact = np.column_stack([S @ nnls(S, yhat[:, j])[0] for j in range(H)])
    np.testing.assert_allclose(mat(wide, col), exact, atol=1e-8)
    objective = lambda y: ((yhat - y) ** 2).sum(axis=0)  # noqa: E731
    assert (objective(mat(theirs, col)) > objective(exact) + 1).all()
