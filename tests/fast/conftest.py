"""The fast tier: pure logic, no TensorFlow, seconds in all.

Run it alone with `python -m pytest tests/fast` (or `-m "not tf"`).
"""

import pathlib
import sys

import pytest

FAST = pathlib.Path(__file__).resolve().parent

MESSAGE = (
    "A fast-tier test imported TensorFlow. Keep tests/fast free of it: move "
    "the test next to the TensorFlow tests, or test a TensorFlow-free "
    "function."
)


def _only_fast_collected(config):
    paths = [pathlib.Path(a.split("::")[0]).resolve() for a in config.args]
    return bool(paths) and all(p == FAST or FAST in p.parents for p in paths)


def pytest_collection_finish(session):
    # Collecting tests/fast alone imports only its modules: none may pull
    # in TensorFlow. (`-m "not tf"` collects every file, TensorFlow too.)
    if _only_fast_collected(session.config) and "tensorflow" in sys.modules:
        raise pytest.UsageError(MESSAGE)


@pytest.fixture(autouse=True)
def _no_tensorflow():
    before = "tensorflow" in sys.modules
    yield
    if not before:
        assert "tensorflow" not in sys.modules, MESSAGE
