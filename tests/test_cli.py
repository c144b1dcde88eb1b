"""The `hubkit` command line."""

import subprocess
import sys

import pytest

from keras_hubkit import cli


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "demo" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_offline(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_hubkit",
            "demo",
            "--quick",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "finetuned" / "saved_model.pb").exists()
