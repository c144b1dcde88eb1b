"""The `hubkit` command line."""

import subprocess
import sys

import pytest

from keras_hubkit.app import cli


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
    for method in ("head only", "staged fine-tuning", "from scratch"):
        assert method in out.stdout
    for name in (
        "training_curves.png",
        "confusion_matrix.png",
        "publisher_saved_model/saved_model.pb",
        "classifier/saved_model.pb",
        "classifier/labels.txt",
    ):
        assert (tmp_path / name).exists(), name


def test_cache_commands(tmp_path, mul_model, capsys):
    import hashlib
    import shutil

    handle = "https://example.invalid/models/mul/1"
    entry = tmp_path / hashlib.sha1(handle.encode()).hexdigest()
    shutil.copytree(mul_model, entry)
    (tmp_path / (entry.name + ".descriptor.txt")).write_text(
        f"Module: {handle}\n"
    )
    assert cli.main(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert handle in out and "1 models" in out
    cli.main(["cache", "remove", handle, "--cache-dir", str(tmp_path)])
    assert "Removed" in capsys.readouterr().out
    assert not entry.exists()
    cli.main(["cache", "clear", "--cache-dir", str(tmp_path)])
    assert "Removed 0 models" in capsys.readouterr().out
