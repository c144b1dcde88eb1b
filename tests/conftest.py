"""Session-scoped SavedModels (built once; TensorFlow is slow to start)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib

import keras
import pytest

import models

REAL_MODELS = (
    pathlib.Path(__file__).resolve().parents[1].parent
    / "shared"
    / "testdata"
    / "real_models"
)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def saved_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("saved_models")


@pytest.fixture(scope="session")
def mul_model(saved_dir):
    return models.save_mul_model(str(saved_dir / "mul"))


@pytest.fixture(scope="session")
def text_model(saved_dir):
    return models.save_text_embedding(str(saved_dir / "text" / "model"))


@pytest.fixture(scope="session")
def image_model(saved_dir):
    return models.save_image_feature_vector(str(saved_dir / "image"))


@pytest.fixture(scope="session")
def signature_model(saved_dir):
    return models.save_signature_only(str(saved_dir / "signature"))


@pytest.fixture(scope="session")
def bert_model(saved_dir):
    return models.save_bert_like(str(saved_dir / "bert"))


@pytest.fixture(scope="session")
def tf1_model(saved_dir):
    return models.save_tf1_hub_module(str(saved_dir / "tf1"))


@pytest.fixture(scope="session")
def real_models():
    if not REAL_MODELS.is_dir():
        pytest.fail(f"Real test models are missing: expected {REAL_MODELS}")
    return REAL_MODELS
