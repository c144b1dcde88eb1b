"""Session-scoped SavedModels (built once; TensorFlow is slow to start).

Nothing here imports TensorFlow at collection time, so the fast tier
(`tests/fast/`, also selected by `pytest -m "not tf"`) runs without it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
FAST = TESTS / "fast"

# Real third-party SavedModels are not in the repository. Point this
# variable at a folder holding them; by default the folder beside a checkout
# of the project workspace is used when it exists.
REAL_MODELS_ENV = "HUBKIT_REAL_MODELS"
# CI sets this so that a missing folder fails instead of skipping.
REQUIRE_REAL_MODELS_ENV = "HUBKIT_REQUIRE_REAL_MODELS"
DEFAULT_REAL_MODELS = TESTS.parents[1] / "shared" / "testdata" / "real_models"


def real_models_dir():
    """The real-models folder this run uses, and whether it exists."""
    path = pathlib.Path(
        os.environ.get(REAL_MODELS_ENV) or DEFAULT_REAL_MODELS
    ).resolve()
    return path, path.is_dir()


def pytest_collection_modifyitems(config, items):
    # Everything outside tests/fast pays for TensorFlow: mark it, so that
    # `pytest -m "not tf"` is the fast tier wherever the tests live.
    for item in items:
        if FAST not in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.tf)
        if "real_models" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_models)


def _require_real_models():
    return os.environ.get(REQUIRE_REAL_MODELS_ENV, "").strip() in ("1", "true")


_SKIPPED_REAL = []


def pytest_runtest_logreport(report):
    if report.skipped and "real_models" in report.keywords:
        _SKIPPED_REAL.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    # However a real-model test came to skip, CI must not pass with it.
    if _SKIPPED_REAL and _require_real_models():
        print(
            f"\n{REQUIRE_REAL_MODELS_ENV} is set but real-model tests were "
            f"skipped: {_SKIPPED_REAL}",
            file=sys.stderr,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    yield
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def saved_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("saved_models")


def _models():
    import models

    return models


@pytest.fixture(scope="session")
def mul_model(saved_dir):
    return _models().save_mul_model(str(saved_dir / "mul"))


@pytest.fixture(scope="session")
def text_model(saved_dir):
    return _models().save_text_embedding(str(saved_dir / "text" / "model"))


@pytest.fixture(scope="session")
def image_model(saved_dir):
    return _models().save_image_feature_vector(str(saved_dir / "image"))


@pytest.fixture(scope="session")
def signature_model(saved_dir):
    return _models().save_signature_only(str(saved_dir / "signature"))


@pytest.fixture(scope="session")
def bert_model(saved_dir):
    return _models().save_bert_like(str(saved_dir / "bert"))


@pytest.fixture(scope="session")
def tf1_model(saved_dir):
    return _models().save_tf1_hub_module(str(saved_dir / "tf1"))


@pytest.fixture(scope="session")
def real_models():
    """The folder of real TF Hub SavedModels (see its README.md).

    Skipped, with how to provide it, when the folder is absent; an error
    instead when `HUBKIT_REQUIRE_REAL_MODELS=1` (CI), so that CI cannot
    pass without them.
    """
    path, found = real_models_dir()
    if found:
        return path
    message = (
        f"Real test models not found at {path}. Set {REAL_MODELS_ENV}=/path"
        "/to/real_models (a folder holding "
        "mobilenet_v3_small_075_224_feature_vector_5 and the others "
        "CONTRIBUTING.md lists) to run this test."
    )
    if _require_real_models():
        pytest.fail(f"{message} {REQUIRE_REAL_MODELS_ENV} is set.")
    pytest.skip(message)


# ------------------------------------------------------- HTTP and the cache
def _scripted_server():
    from http_server import ScriptedServer

    server = ScriptedServer()
    yield server
    server.stop()


@pytest.fixture
def server():
    """A scripted HTTP server on 127.0.0.1 (see tests/http_server.py)."""
    yield from _scripted_server()


@pytest.fixture
def other_server():
    """A second one, for redirects to another host."""
    yield from _scripted_server()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty download cache, with no download settings from outside."""
    path = tmp_path / "cache"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(path))
    for name in (
        "HUBKIT_OFFLINE",
        "HUBKIT_HTTP_AUTH",
        "HUBKIT_DOWNLOAD_DEADLINE",
    ):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture(scope="session")
def model_archive(mul_model):
    """The mul model as a .tar.gz, as a TF Hub server serves it."""
    from http_server import tar_gz_of

    return tar_gz_of(mul_model)
