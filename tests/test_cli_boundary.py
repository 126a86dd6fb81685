"""The command line's boundary: reading, settings, outputs as transactions, exit codes, hints."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from htsforecast import job
from htsforecast._io import file_sha256
from htsforecast.cli import cli_hints, main

FORMULA = "(state / city) * kind"


def _frame(periods: int = 30, states=(("A", "a1"), ("A", "a2"), ("B", "b1"))) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ds = pd.date_range("2018-01-01", periods=periods, freq="MS")
    rows = []
    for state, city in states:
        for kind in ["x", "y"]:
            y = 40 + 8 * np.sin(np.arange(periods) * np.pi / 6) + rng.normal(0, 2, periods)
            rows.append(pd.DataFrame({"state": state, "city": city, "kind": kind,
                                      "month": ds.strftime("%Y-%m-%d"), "sales": y}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "sales.csv"
    _frame().to_csv(path, index=False)
    return path


def _args(data, out, *extra: str) -> list[str]:
    return ["run", "--data", str(data), "--formula", FORMULA, "--time-col", "month",
            "--target-col", "sales", "--freq", "MS", "--models", "snaive,naive",
            "--methods", "bu,ols,wls_struct", "--h", "3", "--level", "80",
            "--n-jobs", "1", "--no-plots", "--out", str(out), *extra]  # fmt: skip


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("htsforecast: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- keys and reading
def test_leading_zero_and_na_keys_keep_their_spelling(tmp_path) -> None:
    df = _frame(states=(("01", "007"), ("1", "7"), ("NA", "001")))
    path = tmp_path / "fips.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "out"
    assert main(_args(path, out)) == 0
    best = pd.read_csv(out / "best_forecasts.csv", dtype=str, keep_default_na=False)
    ids = set(best["unique_id"])
    assert {"state=01/city=007", "state=1/city=7", "state=NA/city=001"} <= ids
    assert {"01", "1", "NA", "<aggregated>"} == set(best["state"])
    assert list(best.columns[:5]) == ["unique_id", "level", "state", "city", "kind"]
    row = best[best["unique_id"] == "state=01/city=007/kind=x"].iloc[0]
    assert (row["level"], row["state"], row["city"], row["kind"]) == (
        "state/city/kind", "01", "007", "x",
    )  # fmt: skip


def test_text_in_target_names_the_file_line(tmp_path, capsys) -> None:
    df = _frame()
    df["sales"] = df["sales"].round(3).astype(str)
    df.loc[4, "sales"] = "12,5"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    assert main(_args(path, tmp_path / "o")) == 2
    msg = _error(capsys)
    assert "target column 'sales'" in msg and "'12,5'" in msg and "file line(s) 6" in msg


def test_not_utf8_data_says_how_to_fix(tmp_path, capsys) -> None:
    df = _frame()
    df.loc[df.city == "a1", "city"] = "Zürich"
    path = tmp_path / "latin.csv"
    df.to_csv(path, index=False, encoding="latin-1")
    assert main(_args(path, tmp_path / "o")) == 2
    msg = _error(capsys)
    assert "is not utf-8 text" in msg and "--encoding" in msg
    out = tmp_path / "ok"
    assert main(_args(path, out, "--encoding", "latin-1")) == 0
    assert "state=A/city=Zürich/kind=x" in set(pd.read_csv(out / "forecasts.csv")["unique_id"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "does not exist"),
    ],
)
def test_data_path_is_checked_first(tmp_path, capsys, make, message) -> None:
    path = tmp_path / "data.csv"
    make(path)
    assert main(_args(path, tmp_path / "o")) == 2
    assert message in _error(capsys)


def test_out_is_checked_before_any_work(csv_path, tmp_path, capsys) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    assert main(_args(csv_path, a_file)) == 2
    assert "is a file" in _error(capsys)
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    assert main(_args(csv_path, foreign)) == 2
    assert "holds files htsforecast did not write" in _error(capsys)
    assert (foreign / "thesis.docx").read_text() == "precious"


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "toml, message",
    [
        ('nonnegative = "no"', "setting 'nonnegative' must be true or false, got 'no'"),
        ('plots = "false"', "setting 'plots' must be true or false"),
        ("h = 3.7", "setting 'h' must be a whole number, got 3.7"),
        ('h = "12"', "setting 'h' must be a whole number, got '12'"),
        ("cv_windows = -1", "setting 'cv_windows' must be >= 0"),
        ("level = [80, 120]", "setting 'level' must hold whole percentages"),
        ('format = "xlsx"', "setting 'format' must be one of ['csv', 'parquet']"),
        ("n_jobs = 0", "setting 'n_jobs' must be a positive number of jobs or -1"),
    ],
)
def test_config_values_are_type_checked(csv_path, tmp_path, capsys, toml, message) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(toml + "\n")
    args = ["run", "--data", str(csv_path), "--formula", FORMULA, "--config", str(cfg)]
    assert main(args) == 2  # fails on the setting, before reading the data
    assert message in _error(capsys)


def test_repeated_levels_are_one_level(csv_path, tmp_path) -> None:
    out = tmp_path / "o"
    args = _args(csv_path, out)
    args[args.index("--level") + 1] = "80,80,95"
    assert main(args) == 0
    fc = pd.read_csv(out / "forecasts.csv")
    assert [c for c in fc.columns if c.startswith("yhat_lo")] == ["yhat_lo_80", "yhat_lo_95"]


# ----------------------------------------------------------------------------- evaluation
def test_cv_windows_zero_forecasts_only(csv_path, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    assert main(_args(csv_path, out, "--cv-windows", "0")) == 0
    assert not (out / "accuracy.csv").exists()
    assert (out / "best_forecasts.csv").exists()
    sel = json.loads((out / "selection.json").read_text())
    assert sel["evaluated"] is False and (sel["model"], sel["method"]) == ("snaive", "bu")
    assert "not evaluated" in capsys.readouterr().out


def test_short_history_skips_default_evaluation_but_not_an_explicit_one(tmp_path, capsys) -> None:
    path = tmp_path / "short.csv"
    _frame(periods=14).to_csv(path, index=False)  # m = 12: 13 training + 3 test do not fit
    out = tmp_path / "o"
    assert main(_args(path, out)) == 0
    assert "notice: 14 periods are too few to evaluate h=3" in capsys.readouterr().out
    assert (out / "forecasts.csv").exists() and not (out / "accuracy.csv").exists()
    assert main(_args(path, tmp_path / "o2", "--cv-windows", "2")) == 2
    assert "--cv-windows 2 does not fit 14 periods with --h 3: 0 window(s) fit" in _error(capsys)


def test_selection_excludes_base_reports_ties_and_records_settings(csv_path, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(_args(csv_path, out)) == 0
    printed = capsys.readouterr().out
    sel = json.loads((out / "selection.json").read_text())
    acc = pd.read_csv(out / "accuracy.csv")
    assert sel["method"] != "base"
    coherent = acc[(acc.level == "all") & (acc.metric == "mase") & (acc.method != "base")]
    assert sel["score"] == pytest.approx(coherent["value"].min())
    assert sel["runner_up"]["margin"] >= 0
    assert "model 'snaive'" in printed and "model 'naive'" in printed  # every model's table
    # seasonal naive residuals are coherent: bu / ols / wls_struct give the same forecasts
    assert "tie on mase to three decimals" in printed
    settings = sel["settings"]
    assert (
        settings["h"] == 3 and settings["freq"] == "MS" and settings["data"].endswith("sales.csv")
    )
    stamp = json.loads((out / "run.json").read_text())
    assert stamp["settings"]["sha256"] == file_sha256(csv_path)
    assert stamp["settings"]["formula"] == FORMULA and stamp["versions"]["pandas"]
    best = pd.read_csv(out / "best_forecasts.csv")
    assert set(best["method"]) == {sel["method"]} and set(best["model"]) == {sel["model"]}
    assert best["unique_id"].nunique() == 18 and len(best) == 18 * 3


def test_allow_incoherent_lets_base_compete(csv_path, tmp_path) -> None:
    out = tmp_path / "o"
    assert main(_args(csv_path, out, "--allow-incoherent")) == 0
    sel = json.loads((out / "selection.json").read_text())
    acc = pd.read_csv(out / "accuracy.csv")
    allrows = acc[(acc.level == "all") & (acc.metric == "mase")]
    assert sel["score"] == pytest.approx(allrows["value"].min())


def test_constant_data_explains_undefined_mase(tmp_path, capsys) -> None:
    path = tmp_path / "flat.csv"
    _frame().assign(sales=5.0).to_csv(path, index=False)
    assert main(_args(path, tmp_path / "o")) == 2
    msg = _error(capsys)
    assert "seasonal-naive error is zero for every node" in msg and "--metric rmse" in msg


# ----------------------------------------------------------------------------- gaps
def test_gap_hint_names_the_cli_option_and_fill_zero_works(tmp_path, capsys) -> None:
    df = _frame()
    df = df.drop(index=df[(df.city == "a2") & (df.month == "2019-03-01")].index)
    path = tmp_path / "gap.csv"
    df.to_csv(path, index=False)
    assert main(_args(path, tmp_path / "o")) == 2
    msg = _error(capsys)
    assert "--fill zero" in msg and "fill='zero'" not in msg
    out = tmp_path / "filled"
    assert main(_args(path, out, "--fill", "zero")) == 0
    assert (out / "forecasts.csv").exists()


def test_ragged_history_runs_without_filling(tmp_path) -> None:
    df = _frame()
    late = (df.city == "b1") & (df.month < "2018-07-01")  # a store opened in July 2018
    path = tmp_path / "ragged.csv"
    df[~late].to_csv(path, index=False)
    out = tmp_path / "o"
    assert main(_args(path, out)) == 0
    fc = pd.read_csv(out / "best_forecasts.csv")
    assert fc["unique_id"].nunique() == 18


def test_cli_hints_rewrite_api_spellings() -> None:
    text = "use intervals='bootstrap' or intervals=None; pass fill='zero'; freq='MS'"
    assert (
        cli_hints(text)
        == "use --intervals bootstrap or --intervals none; pass --fill zero; --freq MS"
    )


# ----------------------------------------------------------------------------- transactions
def test_failed_rerun_leaves_the_previous_output_untouched(csv_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    assert main(_args(csv_path, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(tmp, fmt, forecasts, *rest):
        forecasts.iloc[:100].to_csv(tmp / "forecasts.csv", index=False)  # half-written
        raise OSError("disk full")

    monkeypatch.setattr(job, "_write", broken)
    assert main(_args(csv_path, out, "--h", "4")) == 2
    assert "disk full" in _error(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".o.")] == []


def test_ctrl_c_exits_130_and_writes_nothing(csv_path, tmp_path, monkeypatch, capsys) -> None:
    def interrupted(tmp, fmt, forecasts, *rest):
        forecasts.iloc[:100].to_csv(tmp / "forecasts.csv", index=False)
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "_write", interrupted)
    out = tmp_path / "o"
    assert main(_args(csv_path, out)) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "htsforecast: interrupted, nothing written"
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.glob(".o.*")) == []


def test_internal_error_is_exit_1_without_traceback(csv_path, tmp_path, monkeypatch, capsys):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(job, "_best_frame", bug)
    assert main(_args(csv_path, tmp_path / "o")) == 1
    err = capsys.readouterr().err
    assert "internal error (ZeroDivisionError: oops)" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- formats, engines
def test_parquet_in_gives_parquet_out_with_categoricals(tmp_path) -> None:
    df = _frame()
    path = tmp_path / "sales.parquet"
    df.to_parquet(path, index=False)
    out = tmp_path / "o"
    assert main(_args(path, out)) == 0
    fc = pd.read_parquet(out / "forecasts.parquet")
    assert isinstance(fc["unique_id"].dtype, pd.CategoricalDtype)
    assert isinstance(fc["method"].dtype, pd.CategoricalDtype)
    assert (out / "best_forecasts.parquet").exists() and not (out / "forecasts.csv").exists()
    out_csv = tmp_path / "c"
    assert main(_args(path, out_csv, "--format", "csv")) == 0
    back = pd.read_csv(out_csv / "forecasts.csv")
    np.testing.assert_allclose(back["yhat"], fc["yhat"].to_numpy(), rtol=1e-9)


def test_too_many_fallbacks_fail_unless_allowed(csv_path, tmp_path, monkeypatch, capsys) -> None:
    from htsforecast.models import SeriesForecaster

    class Broken(SeriesForecaster):
        def fit_predict_series(self, uid, ds, y, h, level, future_ds):
            raise RuntimeError("regressor 'temp' missing")

    real = job.make_models
    monkeypatch.setattr(
        job, "make_models", lambda names, m, **kw: {**real(("naive",), m), "broken": Broken()}
    )
    assert main(_args(csv_path, tmp_path / "o")) == 2
    msg = _error(capsys)
    assert "model 'broken' failed on 18 of 18 nodes" in msg and "--allow-fallback" in msg
    assert main(_args(csv_path, tmp_path / "o2", "--allow-fallback")) == 0


def test_engine_dask_from_the_cli_gives_the_local_numbers(csv_path, tmp_path) -> None:
    local, dask = tmp_path / "local", tmp_path / "dask"
    assert main(_args(csv_path, local, "--cv-windows", "0")) == 0
    assert main(_args(csv_path, dask, "--cv-windows", "0", "--engine", "dask")) == 0
    a = pd.read_csv(local / "forecasts.csv")
    b = pd.read_csv(dask / "forecasts.csv")
    pd.testing.assert_frame_equal(a, b)


def test_counts_get_nonnegative_forecasts_and_intervals_for_every_method(tmp_path, capsys):
    rng = np.random.default_rng(7)
    df = _frame()
    df["sales"] = rng.poisson(0.4, len(df))  # sparse 0/1/2 counts, like the radon panel
    path = tmp_path / "counts.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "o"
    args = _args(path, out, "--methods", "bu,ols,wls_struct,td_fp")
    assert main(args) == 0
    assert "the data are counts" in capsys.readouterr().out
    fc = pd.read_csv(out / "forecasts.csv")
    rec = fc[fc.method != "base"]
    assert set(rec["method"]) == {"bu", "ols", "wls_struct", "td_fp"}
    values = rec[[c for c in rec.columns if c.startswith("yhat")]].to_numpy()
    assert (values >= 0).all()
    plain = tmp_path / "plain"
    assert main([*args[:-2], "--out", str(plain), "--no-nonnegative"]) == 0
    lo = pd.read_csv(plain / "forecasts.csv").query("method != 'base'")["yhat_lo_80"]
    assert (lo < 0).any()  # the same run without the policy has negative bounds


def test_a_run_validates_its_input_once(csv_path, tmp_path, monkeypatch) -> None:
    """k CV windows and the final fit share one validated panel (issue 10)."""
    from htsforecast import validation

    calls = {"check_target": 0, "date_grid": 0, "check_duplicates": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name in calls:
        monkeypatch.setattr(validation, name, counted(name, getattr(validation, name)))
    assert main(_args(csv_path, tmp_path / "o", "--cv-windows", "3")) == 0
    acc = pd.read_csv(tmp_path / "o" / "accuracy.csv")
    assert len(acc) > 0
    # the raw frame is checked once (in aggregate); the panel it yields is never re-validated
    assert calls == {"check_target": 1, "date_grid": 1, "check_duplicates": 1}


def test_frequency_typo_fails_at_once_with_the_cli_spelling(csv_path, tmp_path, capsys) -> None:
    args = _args(csv_path, tmp_path / "o")
    args[args.index("--freq") + 1] = "ms"  # milliseconds, meant month start
    assert main(args) == 2
    msg = _error(capsys)
    assert "Did you mean --freq MS (month start)?" in msg and "freq='" not in msg


def test_dates_across_a_dst_change_keep_their_wall_time(tmp_path) -> None:
    df = _frame(periods=40)
    days = pd.date_range("2021-03-01", periods=40, freq="D", tz="Europe/Berlin")
    stamp = dict(zip(sorted(df["month"].unique()), days.strftime("%Y-%m-%dT%H:%M:%S%z")))
    df["month"] = df["month"].map(stamp)  # +0100 before 28 March, +0200 after
    assert {s[-5:] for s in stamp.values()} == {"+0100", "+0200"}
    path = tmp_path / "dst.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "o"
    args = _args(path, out, "--freq", "D", "--cv-windows", "0")
    assert main(args) == 0
    fc = pd.read_csv(out / "best_forecasts.csv", parse_dates=["ds"])
    assert fc["ds"].min() == pd.Timestamp("2021-04-10")  # the day after the last, no zone


def test_save_model_then_predict_without_refitting(csv_path, tmp_path, capsys) -> None:
    out, model, pred = tmp_path / "o", tmp_path / "model", tmp_path / "p"
    assert main(_args(csv_path, out, "--save-model", str(model), "--cv-windows", "1")) == 0
    assert main(["predict", "--model", str(model), "--h", "2", "--out", str(pred)]) == 0
    run = pd.read_csv(out / "forecasts.csv", parse_dates=["ds"])
    first = run[run["ds"] <= run["ds"].min() + pd.DateOffset(months=1)].reset_index(drop=True)
    got = pd.read_csv(pred / "forecasts.csv", parse_dates=["ds"])
    pd.testing.assert_frame_equal(got, first)  # the first 2 steps, identical, no refit
    sel = json.loads((out / "selection.json").read_text())
    best = pd.read_csv(pred / "best_forecasts.csv")
    assert set(best["model"]) == {sel["model"]} and set(best["method"]) == {sel["method"]}
    assert main(["predict", "--model", str(model), "--h", "5", "--out", str(pred)]) == 2
    assert "beyond h_max=3" in _error(capsys)
