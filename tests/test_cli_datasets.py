"""Tests of ``htsforecast datasets`` and of the CLI's top-level error handling."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import htsforecast
import htsforecast.datasets as datasets
from htsforecast.cli import build_parser, main
from htsforecast.errors import DataError

# name -> (n_bottom, n_nodes, n_periods, rows), known from the data sets' SOURCE notes:
# tourism 76 regions x 4 purposes, 1 + 8 + 76 + 4 + 32 + 304 nodes; prison 8 x 2 x 2 x 2 bottom,
# 9 x 3 x 3 x 3 nodes; tourism_large, tourism_small and labour: their shipped agg_mat.csv.
EXPECTED = {
    "tourism": (304, 425, 80, 24_320),
    "prison": (64, 243, 48, 3_072),
    "tourism_large": (304, 555, 228, 69_312),
    "labour": (32, 57, 514, 16_448),
    "tourism_small": (56, 89, 36, 2_016),
}


@pytest.fixture(scope="module")
def csv_table() -> pd.DataFrame:
    """Run ``htsforecast datasets --format csv`` once, in process, and parse its output."""
    out = io.StringIO()
    old, sys.stdout = sys.stdout, out
    try:
        rc = main(["datasets", "--format", "csv"])
    finally:
        sys.stdout = old
    assert rc == 0
    return pd.read_csv(io.StringIO(out.getvalue()))


def test_datasets_csv_lists_every_dataset_with_shapes(csv_table):
    assert list(csv_table.columns) == [
        "name",
        "frequency",
        "formula",
        "n_bottom",
        "n_nodes",
        "n_periods",
        "rows",
        "description",
    ]
    table = csv_table.set_index("name")
    assert list(table.index) == [*datasets.DATASETS, "radon_survey"]
    for name, shape in EXPECTED.items():
        got = table.loc[name, ["n_bottom", "n_nodes", "n_periods", "rows"]]
        assert tuple(int(v) for v in got) == shape, name
    assert table.loc["tourism", "frequency"] == "quarterly"
    assert table.loc["labour", "frequency"] == "monthly"
    assert table.loc["tourism", "formula"] == "(state / region) * purpose"


def test_radon_rows_are_consistent(csv_table):
    table = csv_table.set_index("name")
    panel = table.loc["radon_panel"]
    assert panel["formula"] == "(state / county) * floor"
    assert panel["rows"] == panel["n_bottom"] * panel["n_periods"]  # a complete panel
    assert panel["n_nodes"] > panel["n_bottom"]
    survey = table.loc["radon_survey"]
    assert survey["frequency"] == "cross-sectional"
    assert survey["rows"] == 12_777  # homes in srrs2.dat
    assert survey[["n_bottom", "n_nodes", "n_periods"]].isna().all()


def test_datasets_table_format(capsys, monkeypatch):
    fake = pd.DataFrame({"name": ["tiny"], "n_bottom": [3], "description": ["a tiny set"]})
    monkeypatch.setattr(datasets, "list_datasets", lambda: fake)
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert out == fake.to_string(index=False) + "\n"
    assert "tiny" in out and "a tiny set" in out


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (
            DataError("unknown data set 'x'.\nHint: choose one"),
            "unknown data set 'x'. Hint: choose one",
        ),
        (
            OSError(2, "No such file or directory", "y.csv"),
            "[Errno 2] No such file or directory: 'y.csv'",
        ),
    ],
)
def test_errors_become_one_line_and_exit_2(capsys, monkeypatch, exc, message):
    def boom():
        raise exc

    monkeypatch.setattr(datasets, "list_datasets", boom)
    assert main(["datasets"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"htsforecast: error: {message}\n"
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_bugs_exit_1_in_one_line_and_raise_under_debug(monkeypatch, capsys):
    def bug():
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(datasets, "list_datasets", bug)
    assert main(["datasets"]) == 1  # not 2: it is not the user's input
    err = capsys.readouterr().err
    assert "internal error (KeyError" in err and "Traceback" not in err
    monkeypatch.setenv("HTSFORECAST_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["datasets"])


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert "usage: htsforecast" in capsys.readouterr().err
    assert main(["datasets", "--format", "xml"]) == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err
    assert main(["nosuchcommand"]) == 2


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"htsforecast {htsforecast.__version__}"
    assert main(["--help"]) == 0
    assert "datasets" in capsys.readouterr().out


def test_parser_is_extensible():
    parser = build_parser()
    args = parser.parse_args(["datasets"])
    assert args.command == "datasets" and callable(args.func)


def test_console_script_runs():
    """The installed entry point (or ``python -m htsforecast.cli``) prints the table."""
    script = Path(sys.executable).with_name("htsforecast")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "htsforecast.cli"]
    proc = subprocess.run([*cmd, "datasets"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "frequency", "formula"]
    row = next(line for line in lines if line.split()[0] == "tourism_large")
    assert "304" in row.split() and "555" in row.split() and "69312" in row.split()
