"""The public API is listed once, in keras_hubkit/__init__.py."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras_hubkit as hk

PACKAGE = pathlib.Path(hk.__file__).parent


def test_all_names_exist_and_are_documented():
    for name in hk.__all__:
        obj = getattr(hk, name)
        if name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"


def test_every_public_name_has_an_api_page():
    docs = PACKAGE.parent / "docs" / "api"
    for name in hk.__all__:
        if name != "__version__":
            page = docs / f"{name}.md"
            assert page.exists(), f"docs/api/{name}.md is missing"
            assert "::: keras_hubkit." in page.read_text()


def test_errors_inherit_builtins():
    for name in dir(hk.errors):
        obj = getattr(hk.errors, name)
        if isinstance(obj, type) and issubclass(obj, hk.errors.HubkitError):
            if obj is not hk.errors.HubkitError:
                builtin_bases = [
                    b
                    for b in obj.__mro__
                    if b.__module__ == "builtins"
                    and b not in (Exception, BaseException, object)
                ]
                assert builtin_bases, f"{name} inherits no builtin error"


def test_library_import_loads_no_tuner_and_patches_nothing():
    # A fresh interpreter, as a user's script: Keras first, then us.
    code = textwrap.dedent(
        """
        import json, sys
        import keras
        import keras_hubkit as hk
        loaded = {
            "hub_layer": "keras_hubkit.hub_layer" in sys.modules,
            "tuner_at_import": "keras_tuner" in sys.modules,
            "plots": "keras_hubkit.app.plots" in sys.modules,
        }
        hk.tuning  # loads keras-tuner, still patches nothing
        from keras_tuner import Tuner
        method = Tuner._configure_tensorboard_dir
        loaded["patched"] = hasattr(method, "_hubkit_patched")
        print(json.dumps(loaded))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PACKAGE.parent,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    # Keras was imported first: the library loaded at once, so HubLayer is
    # registered for keras.models.load_model.
    assert loaded == {
        "hub_layer": True,
        "tuner_at_import": False,
        "plots": False,
        "patched": False,
    }


def test_public_names_survive_submodule_imports():
    # Lazy mode (nothing imported before us): importing the submodule
    # must not turn a public function into a module (a submodule named like
    # the function would: the scan's module is `scanner` for that reason).
    code = textwrap.dedent(
        """
        import importlib, json, pkgutil, types
        import keras_hubkit as hk
        skip = ("keras_hubkit.app", "keras_hubkit.__main__")
        for info in pkgutil.walk_packages(hk.__path__, "keras_hubkit."):
            if not info.name.startswith(skip):
                importlib.import_module(info.name)
        modules = {
            "errors", "finetune", "keras_file", "losses", "schedules",
            "tuning",
        }
        wrong = [
            name for name in hk.__all__
            if name not in modules
            and isinstance(getattr(hk, name), types.ModuleType)
        ]
        print(json.dumps(wrong))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PACKAGE.parent,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_keras_imported_after_us_still_finds_hub_layer(mul_model, tmp_path):
    """`import keras_hubkit` first, keras later: a `.keras` file with a
    HubLayer loads without touching `hk.HubLayer` (Keras imports no
    third-party module to look for a class)."""
    import keras

    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((2,)), hk.HubLayer(mul_model)]).save(path)
    code = textwrap.dedent(
        f"""
        import sys
        import keras_hubkit
        assert "keras" not in sys.modules
        import keras
        model = keras.models.load_model({str(path)!r})
        print(type(model.layers[0]).__name__)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "HubLayer"
