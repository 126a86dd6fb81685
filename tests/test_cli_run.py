"""``htsforecast run``: the whole job from the command line, and its error paths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from htsforecast.cli import main
from htsforecast.hierarchy import Hierarchy
from htsforecast.job import RunConfig, make_methods, make_models

FORMULA = "(state / city) * kind"


@pytest.fixture
def csv_path(tmp_path):
    rng = np.random.default_rng(1)
    ds = pd.date_range("2018-01-01", periods=36, freq="MS")
    rows = []
    for state, city in [("A", "a1"), ("A", "a2"), ("B", "b1")]:
        for kind in ["x", "y"]:
            y = 50 + 10 * np.sin(np.arange(36) * np.pi / 6) + rng.normal(0, 2, 36)
            rows.append(pd.DataFrame({"state": state, "city": city, "kind": kind,
                                      "month": ds.strftime("%Y-%m-%d"), "sales": y}))  # fmt: skip
    path = tmp_path / "sales.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


def _args(csv_path, out, *extra):
    return ["run", "--data", str(csv_path), "--formula", FORMULA, "--time-col", "month",
            "--target-col", "sales", "--freq", "MS", "--models", "snaive,naive",
            "--methods", "bu,ols,mint_shrink,td_fp", "--h", "6", "--cv-windows", "2",
            "--level", "80,95", "--n-jobs", "1", "--out", str(out), *extra]  # fmt: skip


def test_run_writes_coherent_forecasts_accuracy_and_plots(csv_path, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(_args(csv_path, out)) == 0
    printed = capsys.readouterr().out
    assert "chosen: model=" in printed and "mase by level" in printed
    fc = pd.read_csv(out / "forecasts.csv", parse_dates=["ds"])
    assert list(fc.columns[:5]) == ["unique_id", "ds", "model", "method", "yhat"]
    assert {"yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"} <= set(fc.columns)
    assert set(fc["method"]) == {"base", "bu", "ols", "mint_shrink", "td_fp"}
    hier = Hierarchy.from_formula(FORMULA)
    raw = pd.read_csv(csv_path)
    hier.aggregate(raw, time_col="month", target_col="sales", freq="MS")
    S = hier.S.toarray()
    for (_, method), part in fc.groupby(["model", "method"]):
        wide = part.pivot(index="unique_id", columns="ds", values="yhat").loc[hier.node_ids]
        assert wide.shape == (hier.n_nodes, 6)
        if method != "base":  # every reconciled method is coherent
            np.testing.assert_allclose(S @ wide.to_numpy()[-hier.n_bottom :], wide.to_numpy())
    acc = pd.read_csv(out / "accuracy.csv")
    assert list(acc.columns) == ["level", "model", "method", "metric", "value"]
    assert {"mase", "rmse", "mae", "coverage_80", "coverage_95"} <= set(acc["metric"])
    assert set(acc["level"]) == {*hier.levels, "all"}
    sel = json.loads((out / "selection.json").read_text())
    coherent = acc[(acc["level"] == "all") & (acc["metric"] == "mase") & (acc["method"] != "base")]
    best = coherent["value"].min()
    assert sel["score"] == pytest.approx(best)
    for png in ["accuracy_mase.png", "forecasts.png", "S.png"]:
        assert (out / png).stat().st_size > 1000


def test_run_with_config_file_and_cli_override(csv_path, tmp_path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'data = "{csv_path}"\nformula = "{FORMULA}"\ntime_col = "month"\n'
        'target_col = "sales"\nfreq = "MS"\nmodels = ["mean"]\nmethods = "bu"\nh = 3\n'
        f'cv_windows = 1\nn_jobs = 1\nplots = false\nout = "{tmp_path / "cfg_out"}"\n'
    )
    assert main(["run", "--config", str(cfg), "--h", "4"]) == 0
    fc = pd.read_csv(tmp_path / "cfg_out" / "forecasts.csv")
    assert set(fc["model"]) == {"mean"} and set(fc["method"]) == {"base", "bu"}
    assert fc.groupby(["unique_id", "method"]).size().eq(4).all()  # --h 4 beat the h = 3
    assert not (tmp_path / "cfg_out" / "forecasts.png").exists()


def test_run_on_a_bundled_dataset(tmp_path) -> None:
    out = tmp_path / "t"
    args = ["run", "--dataset", "tourism", "--models", "snaive", "--methods", "bu,wls_struct",
            "--h", "4", "--n-jobs", "1", "--no-plots", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    fc = pd.read_csv(out / "forecasts.csv")
    assert fc["unique_id"].nunique() == 425


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--data", "does/not/exist.csv"], "does not exist"),
        (["--target-col", "revenue"], "revenue"),
        (["--methods", "bu,magic"], "unknown method"),
        (["--models", "ets,oracle"], "unknown model"),
        (["--formula", "(state / city * kind"], ""),
        (["--metric", "nope"], "nope"),
    ],
)
def test_run_errors_are_one_line_without_traceback(
    csv_path, tmp_path, capsys, change, message
) -> None:
    args = _args(csv_path, tmp_path / "o", "--no-plots")
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += change
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("htsforecast: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_data_without_formula_or_freq_is_refused(csv_path, tmp_path, capsys) -> None:
    assert main(["run", "--data", str(csv_path), "--out", str(tmp_path / "new")]) == 2
    assert "--formula" in capsys.readouterr().err


def test_unknown_config_key_and_bad_toml(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("hh = 3\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "unknown setting" in capsys.readouterr().err
    bad.write_text("h = [\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_builders_cover_every_documented_name() -> None:
    from htsforecast.job import METHODS, MODELS

    assert set(make_models(tuple(MODELS), 12)) == set(MODELS)
    assert set(make_methods(tuple(METHODS))) == set(METHODS)
    assert RunConfig.from_sources(None, {"level": "80,95", "models": "ets, snaive"}).level == (
        80,
        95,
    )


@pytest.mark.parametrize(
    "edit, args_change, message",
    [
        (lambda df: df.assign(month=df.month.where(df.index != 3, "2015-13-45")), [], "month"),
        (None, ["--level", "abc"], "setting 'level' must hold whole percentages"),
        (None, ["--h", "0"], "setting 'h' must be >= 1, got 0"),
    ],
)
def test_unreadable_input_is_one_line_error(
    csv_path, tmp_path, capsys, edit, args_change, message
) -> None:
    if edit is not None:
        edit(pd.read_csv(csv_path)).to_csv(csv_path, index=False)
    args = _args(csv_path, tmp_path / "o", "--no-plots")
    for flag, value in zip(args_change[::2], args_change[1::2]):
        args[args.index(flag) + 1] = value
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("htsforecast: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_csv_is_one_line_error(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('state,city,kind,month,sales\nA,a1,x,"2018-01-01\n')
    args = _args(bad, tmp_path / "o", "--no-plots")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("htsforecast: error:") and err.count("\n") == 1


def test_default_models_choose_pooling_on_sparse_radon_counts(tmp_path) -> None:
    """The default ``--models`` (ets, pooled_median) on a radon subset: CV picks the pooled median.

    Two states of the bundled panel, the last six years (county x floor monthly counts, mostly
    zeros and ones). AutoETS alone scores about the seasonal-naive scale there; the default job
    must choose the pooled model because its CV MASE is lower, and land below 1.
    """
    from htsforecast.datasets import load_radon_panel
    from htsforecast.job import run

    assert RunConfig().models == ("ets", "pooled_median")
    data = load_radon_panel().data
    sub = data[data["state"].isin(["AZ", "WI"]) & (data["ds"] >= "2019-01-01")]
    path = tmp_path / "radon_sub.csv"
    sub.to_csv(path, index=False)
    cfg = RunConfig(data=str(path), formula="(state / county) * floor", freq="MS", h=12,
                    methods=("bu",), cv_windows=1, n_jobs=1, out=str(tmp_path / "o"),
                    plots=False)  # fmt: skip
    with pytest.warns(RuntimeWarning):  # a few all-zero cells have no finite MASE
        res = run(cfg, echo=lambda s: None)
    acc = res.accuracy
    mase = acc[(acc["level"] == "all") & (acc["metric"] == "mase")]
    score = mase.set_index(["model", "method"])["value"]
    assert res.selection["model"] == "pooled_median"
    assert res.selection["score"] == pytest.approx(score[("pooled_median", "bu")])
    assert score[("pooled_median", "bu")] < min(score[("ets", "base")], score[("ets", "bu")])
    assert res.selection["score"] < 1.0
