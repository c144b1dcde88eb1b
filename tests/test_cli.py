"""The `hubkit` command line, on commands that load TensorFlow.

Usage mistakes that stop before TensorFlow are in tests/fast/test_cli_usage.py.
"""

import os
import re
import subprocess
import sys

import pytest

from keras_hubkit.app import cli

# What TensorFlow writes to stderr while it starts (see cli._STARTUP_NOISE).
NOISE = re.compile(r"^[IW]\d{4} |absl::InitializeLog|cuInit", re.M)


def _hubkit(*args):
    return subprocess.run(
        [sys.executable, "-m", "keras_hubkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": ""},
    )


def test_tensorflow_start_up_lines_are_hidden(image_model):
    out = _hubkit("inspect", image_model)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "__call__ traces" in out.stdout
    assert not NOISE.search(out.stderr), out.stderr


@pytest.mark.slow
def test_demo_runs_offline(tmp_path):
    out = _hubkit("demo", "--quick", "--output-dir", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    for method in ("head only", "staged fine-tuning", "from scratch"):
        assert method in out.stdout
    assert "the spread" in out.stdout  # says which gaps are real
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


def test_export_refuses_a_signature_only_model(
    signature_model, tmp_path, capsys
):
    dest = tmp_path / "copy"
    assert cli.main(["export", signature_model, str(dest)]) == 2
    err = capsys.readouterr().err
    assert "ExportError" in err and "__call__" in err
    assert "serving_default" in err or "norm" in err
    assert not dest.exists()


def test_import_option_runs_before_the_command(tmp_path, monkeypatch, capsys):
    (tmp_path / "hubkit_custom_ops.py").write_text("REGISTERED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = cli.main(
        [
            *["--import", "hubkit_custom_ops"],
            *["cache", "list", "--cache-dir", str(tmp_path / "cache")],
        ]
    )
    assert code == 0
    assert sys.modules["hubkit_custom_ops"].REGISTERED


def test_inspect_and_export_a_keras_file(mul_model, tmp_path):
    """`hubkit inspect`/`export` read the SavedModel a `.keras` file
    carries, in Keras safe mode, after the source folder is gone."""
    import shutil

    import keras

    import keras_hubkit as hk

    source = shutil.copytree(mul_model, tmp_path / "source")
    # Named: an automatic name depends on the layers made before it.
    layer = hk.HubLayer(str(source), name="mul")
    model = keras.Sequential([keras.Input((2,)), layer])
    model.save(tmp_path / "m.keras")
    shutil.rmtree(source)

    out = _hubkit("inspect", tmp_path / "m.keras")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HubLayer 'mul'" in out.stdout
    assert "no risky ops" in out.stdout and "__call__ traces" in out.stdout

    out = _hubkit("export", tmp_path / "m.keras", tmp_path / "out")
    assert out.returncode == 0, out.stderr[-2000:]
    reloaded = hk.load(str(tmp_path / "out"))
    assert float(reloaded(keras.ops.ones((1, 2)))[0, 0]) == 2.0


def test_inspect_of_a_folder_that_is_no_saved_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    out = _hubkit("inspect", tmp_path)
    assert out.returncode == 2
    assert "InvalidSavedModelError" in out.stderr
    assert "saved_model.pb" in out.stderr and "trust" not in out.stderr


def test_export_never_runs_python_from_a_keras_file(tmp_path):
    """A `.keras` with a Python lambda is refused in safe mode: the command
    line never turns safe mode off, so the lambda never runs."""
    import keras

    canary = tmp_path / "canary"
    path = str(canary)  # a plain string, so the lambda serializes
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Lambda(lambda x: (open(path, "w").close(), x)[1]),
        ]
    )
    model.save(tmp_path / "evil.keras")
    canary.unlink()  # building the model ran the lambda once, here
    out = _hubkit("export", tmp_path / "evil.keras", tmp_path / "out")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "UnsafeDeserializationError" in out.stderr
    assert not canary.exists()
    assert not (tmp_path / "out").exists()


def test_demo_verdict_separates_real_gaps_from_noise():
    from keras_hubkit.app.demo import verdict

    rows = [
        {"method": "head only", "accuracy": 0.84},
        {"method": "staged", "accuracy": 0.838},
        {"method": "from scratch", "accuracy": 0.59},
    ]
    close, far = verdict(rows, examples=880)
    assert "cannot tell them apart" in close
    assert far.startswith("head only is better than from scratch by 0.250")
    # With a tiny held-out set even a large gap is within the spread.
    assert "cannot tell" in verdict(rows, examples=10)[1]
