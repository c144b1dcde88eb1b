"""`hubkit` mistakes end in one line and a non-zero exit, fast.

Each test runs the console script the way a user does (`python -m
keras_hubkit` from the repository root, in a subprocess). None of these
commands gets as far as importing TensorFlow.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def hubkit(*args, pythonpath=(), cwd=ROOT):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(ROOT)])
    out = subprocess.run(
        [sys.executable, "-m", "keras_hubkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def _one_line(out):
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_help_lists_every_command():
    out = hubkit("--help")
    assert out.returncode == 0
    for command in ("demo", "run", "train", "export", "inspect", "cache"):
        assert command in out.stdout
    assert "--import" in out.stdout and "--verbose" in out.stdout


def test_cache_list_of_an_empty_cache(tmp_path):
    out = hubkit("cache", "list", "--cache-dir", tmp_path)
    assert out.returncode == 0
    assert "(0 models)" in out.stdout
    assert out.stderr == ""


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "missing.toml"], "recipe=missing.toml"),
        (
            ["train", "--data", "nowhere", "--handle", "h", "--output", "o"],
            "--data=nowhere",
        ),
        (
            [
                *["train", "--csv", "x.csv", "--data", "d"],
                *["--handle", "h", "--output", "o"],
            ],
            "Give either --data",
        ),
        (["inspect", "no/such/model"], "HANDLE=no/such/model"),
        (["export", "no/such/model", "out"], "SOURCE=no/such/model"),
        (["cache", "remove"], "hubkit cache remove HANDLE"),
        (["--import", "no_such_module", "cache", "list"], "--import"),
        (["cache", "list", "--import", "no_such_module"], "--import"),
    ],
)
def test_mistakes_end_in_one_line(args, expected, tmp_path):
    out = hubkit(*args, cwd=tmp_path)
    assert out.returncode == 2
    line = _one_line(out)
    assert line.startswith(
        f"hubkit {args[0] if args[0] != '--import' else 'cache'}"
    )
    assert expected in line
    assert not (tmp_path / "o").exists()


def test_export_into_a_full_folder_names_the_flag(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    out = hubkit("export", tmp_path, tmp_path / "dest")
    assert out.returncode == 2
    assert "--overwrite" in _one_line(out)
    assert (tmp_path / "dest" / "keep.txt").read_text() == "mine"


@pytest.fixture
def without_demo_extra(tmp_path):
    """A path entry that makes the demo extra look uninstalled."""
    blocked = tmp_path / "blocked"
    for name in ("sklearn", "matplotlib", "PIL"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError({f'No module named {name}'!r}, "
            f"name={name!r})\n"
        )
    return blocked


def test_demo_without_the_extra_says_what_to_install(
    without_demo_extra, tmp_path
):
    out = hubkit(
        "demo",
        "--output-dir",
        tmp_path / "demo",
        pythonpath=[without_demo_extra],
    )
    assert out.returncode == 2
    assert 'pip install "keras_hubkit[demo]"' in _one_line(out)
    assert not (tmp_path / "demo").exists()


def test_train_without_the_extra_says_what_to_install(
    without_demo_extra, tmp_path
):
    (tmp_path / "data").mkdir()
    out = hubkit(
        "train",
        "--data",
        tmp_path / "data",
        "--handle",
        tmp_path,
        "--output",
        tmp_path / "out",
        pythonpath=[without_demo_extra],
    )
    assert out.returncode == 2
    line = _one_line(out)
    assert 'pip install "keras_hubkit[demo]"' in line and "PIL" in line
    assert not (tmp_path / "out").exists()
