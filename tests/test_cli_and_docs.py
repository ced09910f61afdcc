"""The command line, the README's code and the example scripts, run as a user would."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from collapse_sim import cli

ROOT = Path(__file__).resolve().parents[1]


def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    assert "gaussian" in capsys.readouterr().out


def test_cli_run_writes_png_and_csv(tmp_path, capsys):
    code = cli.main(["run", "gaussian", "--generations", "30", "--chains", "200",
                     "--seed", "3", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "theory_q50" in out and "median variance" in out
    png, csv = tmp_path / "gaussian.png", tmp_path / "gaussian.csv"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(csv)
    assert set(table["estimator"]) == {"mle", "unbiased"}
    assert len(table) == 2 * 31
    # the table is the simulation, not a placeholder: row 0 is the truth's variance
    assert (table[table.generation == 0]["sim_q50"] == 1.0).all()


@pytest.mark.parametrize(("name", "size"), [
    ("gmm", ["--generations", "30", "--chains", "2", "--n-samples", "300"]),
    ("mismatch", ["--generations", "20", "--chains", "50"]),
])
def test_cli_runs_every_preset(name, size, tmp_path, capsys):
    assert cli.main(["run", name, *size, "--seed", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / f"{name}.csv")
    assert len(table) > 0 and not table.isna().any().any()
    assert "generation" in out


def test_cli_bad_input(tmp_path, capsys):
    assert cli.main(["run", "nonsense", "--out", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert cli.main(["run", "gaussian", "--chains", "0", "--out", str(tmp_path)]) == 2
    assert "chains" in capsys.readouterr().err


def test_console_script_is_installed():
    # `pip install -e .` must have put the entry point on PATH next to this interpreter.
    exe = Path(sys.executable).with_name("collapse-sim")
    if not exe.exists():
        pytest.skip("package not installed in this environment (run via pip install -e .)")
    result = subprocess.run([str(exe), "list"], capture_output=True, text=True, check=True)
    assert "gaussian" in result.stdout


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "run.npz").exists()


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_run(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    runpy.run_path(str(script), run_name="__main__")
    assert list(tmp_path.glob("*.png")), "example wrote no figure"


def test_plotting_and_experiments_load_lazily():
    import subprocess
    import sys

    code = ("import sys, collapse_sim as cs; assert 'matplotlib' not in sys.modules; "
            "assert callable(cs.plotting.density_evolution); "
            "assert 'regression' in cs.experiments.PRESETS; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "ok"
