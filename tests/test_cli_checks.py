"""The command line checks what it can before simulating: preset names, the output folder."""

import pytest

from collapse_sim import cli, experiments


def test_preset_names_accept_any_case_and_dashes():
    assert cli.preset_name("Gaussian") == "gaussian"
    assert cli.preset_name("SAMPLING-BIAS") == "sampling_bias"


def test_a_misspelt_preset_suggests_the_nearest():
    with pytest.raises(ValueError, match="did you mean 'gaussian'"):
        cli.preset_name("gausian")
    with pytest.raises(ValueError, match="the presets are: gaussian"):
        cli.preset_name("zzzz")


def test_a_bad_output_folder_fails_before_the_simulation(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")

    def never(*args, **kwargs):  # the preset must not start
        raise AssertionError("the simulation ran before the output folder was checked")

    monkeypatch.setattr(experiments, "run_preset", never)
    assert cli.main(["run", "gaussian", "--out", str(blocker / "sub")]) == 2
    assert "--out" in capsys.readouterr().err


def test_run_help_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "sampling_bias" in capsys.readouterr().out
