"""Oracle: temporal and cross-temporal bu / ols / struc against hierarchicalforecast.

hierarchicalforecast (1.5.x) reconciles temporally with ``reconcile(..., temporal=True)`` on the
``aggregate_temporal`` structure, and only with reconcilers that need no in-sample data (so
wlsv / shr / bdshr / tcs have no peer). It has no joint cross-temporal reconciler; its
cross-temporal recipe is sequential (cross-sectional at every temporal level, then temporal).
For bu, ols and struc that sequence *is* the joint solution: S = S_cs ⊗ S_te and W = W_cs ⊗
W_te make the projection M_cs ⊗ M_te. For labour the joint problem is also small enough to give
hierarchicalforecast the dense Kronecker S directly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from htsforecast import Hierarchy
from htsforecast.datasets import load_labour, load_tourism_large
from htsforecast.models import SeasonalNaive
from htsforecast.temporal import (
    TemporalForecasts,
    TemporalHierarchy,
    forecast_temporal,
    reconcile_cross_temporal,
    reconcile_temporal,
)

hf_core = pytest.importorskip("hierarchicalforecast.core")
hf_methods = pytest.importorskip("hierarchicalforecast.methods")
hf_utils = pytest.importorskip("hierarchicalforecast.utils")

H = 12
PEER = {
    "bu": ("BottomUp", lambda: hf_methods.BottomUp()),
    "ols": ("MinTrace_method-ols", lambda: hf_methods.MinTrace("ols")),
    "struc": ("MinTrace_method-wls_struct", lambda: hf_methods.MinTrace("wls_struct")),
}


def setup(loader):
    """Same base forecasts (seasonal naive, perturbed so they are incoherent) for both."""
    ds = loader()
    hier = Hierarchy.from_formula(ds.formula)
    Y = hier.aggregate(ds.data, freq=ds.freq)
    th = TemporalHierarchy(ds.freq)
    n_keep = (Y.groupby("unique_id").size().iloc[0] // th.m) * th.m
    Y = Y.groupby("unique_id", sort=False).tail(n_keep)  # the end-aligned sample
    train = Y.groupby("unique_id", sort=False).head(n_keep - H)
    base = forecast_temporal(train, th, {"sn": SeasonalNaive(12)}, h=H)
    rng = np.random.default_rng(0)
    fc = base.forecasts.copy()
    fc["yhat"] = fc["yhat"] * (1 + 0.1 * rng.standard_normal(len(fc)))
    base = TemporalForecasts(fc, base.insample, th, H, base.fallbacks)
    future = Y.groupby("unique_id", sort=False).tail(H)[["unique_id", "ds"]]
    Y_te, S_te, tags_te = hf_utils.aggregate_temporal(future, th.nixtla_spec())
    return hier, th, base, Y_te, S_te, tags_te


def peer_frame(base, th, Y_te):
    """Our base forecasts keyed by hierarchicalforecast's temporal ids ("annual-1" ...)."""
    fc = base.forecasts.sort_values(["unique_id", "temporal_level", "ds"]).copy()
    block = fc.groupby(["unique_id", "temporal_level"]).cumcount() + 1
    fc["temporal_id"] = fc["temporal_level"].map(th.level_name) + "-" + block.astype(str)
    out = Y_te[["unique_id", "temporal_id", "ds"]].merge(
        fc[["unique_id", "temporal_id", "temporal_level", "ds", "yhat"]].rename(
            columns={"ds": "ds_ours"}
        ),
        on=["unique_id", "temporal_id"],
    )
    assert len(out) == len(fc) == len(Y_te)
    return out.rename(columns={"yhat": "sn"})


def compare(ours, peer, column, method):
    got = ours.forecasts[ours.forecasts.method == method]
    both = peer.merge(
        got[["unique_id", "ds", "temporal_level", "yhat"]].rename(columns={"ds": "ds_ours"}),
        on=["unique_id", "temporal_level", "ds_ours"],
    )
    assert len(both) == len(peer)
    np.testing.assert_allclose(
        both["yhat"], both[column], rtol=1e-8, atol=1e-8 * both.yhat.abs().max()
    )


def temporal_peer(Y_hat, S_te, tags_te, methods):
    rec = hf_core.HierarchicalReconciliation([PEER[m][1]() for m in methods])
    Y_hat = Y_hat[["unique_id", "temporal_id", "ds", "sn"]]
    return rec.reconcile(Y_hat_df=Y_hat, S_df=S_te, tags=tags_te, temporal=True)


def sequential_peer(Y_hat, S_te, tags_te, hier):
    """hierarchicalforecast's cross-temporal recipe: cross-sectional at every temporal node
    (one call: each temporal node is its own integer ``ds``), then temporal, per method."""
    S_cs, tags_cs = hier.to_nixtla()
    Y_cs = Y_hat.assign(ds=pd.factorize(Y_hat["temporal_id"])[0])
    cs = hf_core.HierarchicalReconciliation([PEER[m][1]() for m in PEER]).reconcile(
        Y_hat_df=Y_cs[["unique_id", "ds", "sn"]], S_df=S_cs, tags=tags_cs
    )
    step1 = Y_cs.drop(columns="sn").merge(cs, on=["unique_id", "ds"])
    out = Y_hat[["unique_id", "temporal_id", "temporal_level", "ds_ours"]]
    for method, (suffix, _) in PEER.items():
        name = f"sn/{suffix}"
        step = step1[["unique_id", "temporal_id", name]].rename(columns={name: "sn"})
        step = step.merge(
            Y_hat[["unique_id", "temporal_id", "ds"]], on=["unique_id", "temporal_id"]
        )
        te = temporal_peer(step, S_te, tags_te, [method])
        out = out.merge(te[["unique_id", "temporal_id", name]], on=["unique_id", "temporal_id"])
    return out


@pytest.mark.parametrize(
    "loader", [load_labour, load_tourism_large], ids=["labour", "tourism_large"]
)
def test_temporal_and_cross_temporal_equal_hierarchicalforecast(loader):
    hier, th, base, Y_te, S_te, tags_te = setup(loader)
    Y_hat = peer_frame(base, th, Y_te)
    ours_te = reconcile_temporal(base, list(PEER))
    peer_te = temporal_peer(Y_hat, S_te, tags_te, list(PEER)).merge(
        Y_hat[["unique_id", "temporal_id", "temporal_level", "ds_ours"]],
        on=["unique_id", "temporal_id"],
    )
    ours_ct = reconcile_cross_temporal(base, hier, list(PEER))
    peer_ct = sequential_peer(Y_hat, S_te, tags_te, hier)
    for method, (suffix, _) in PEER.items():
        compare(ours_te, peer_te, f"sn/{suffix}", method)
        compare(ours_ct, peer_ct, f"sn/{suffix}", method)
    assert ours_ct.diagnostics.max_cross_sectional_violation.max() < 1e-6
    assert ours_ct.diagnostics.max_temporal_violation.max() < 1e-6


def test_labour_cross_temporal_equals_peer_on_dense_kronecker():
    """The joint problem given to hierarchicalforecast as one S = S_cs ⊗ S_te (1,596 x 384)."""
    hier, th, base, Y_te, S_te, tags_te = setup(load_labour)
    Y_hat = peer_frame(base, th, Y_te)
    S_cs = hier.S.toarray()
    te_ids = list(S_te["temporal_id"])
    S_te_arr = S_te.drop(columns="temporal_id").to_numpy(float)
    ct_ids = [f"{c}//{t}" for c in hier.node_ids for t in te_ids]
    bottoms = [f"{c}//{t}" for c in hier.bottom_ids for t in S_te.columns[1:]]
    S_ct = pd.DataFrame(np.kron(S_cs, S_te_arr), columns=bottoms)
    S_ct.insert(0, "unique_id", ct_ids)
    pos, bset = {u: i for i, u in enumerate(ct_ids)}, set(bottoms)
    order = [i for i, u in enumerate(ct_ids) if u not in bset] + [pos[b] for b in bottoms]
    S_ct = S_ct.iloc[order].reset_index(drop=True)
    yh = Y_hat.assign(unique_id=Y_hat.unique_id + "//" + Y_hat.temporal_id, ds=0)
    yh = yh.set_index("unique_id").loc[S_ct.unique_id].reset_index()
    tags = {"all": np.array(S_ct.unique_id)}
    methods = list(PEER)
    peer = hf_core.HierarchicalReconciliation([PEER[m][1]() for m in methods]).reconcile(
        Y_hat_df=yh[["unique_id", "ds", "sn"]], S_df=S_ct, tags=tags
    )
    peer = peer.merge(yh[["unique_id", "temporal_level", "ds_ours"]], on="unique_id")
    peer["unique_id"] = peer["unique_id"].str.split("//").str[0]
    ours = reconcile_cross_temporal(base, hier, methods)
    for method, (suffix, _) in PEER.items():
        compare(ours, peer, f"sn/{suffix}", method)
