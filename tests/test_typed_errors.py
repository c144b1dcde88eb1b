"""Bad SavedModel files, cache folders and URLs get our typed errors, in the
form "what was expected. Received: name=value. How to fix it." (issue 13)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import errors

from http_server import ScriptedServer
from http_server import Serve
from http_server import crafted_tar_gz
from http_server import saved_model_members

DATA = "variables/variables.data-00000-of-00001"
INDEX = "variables/variables.index"


@pytest.fixture
def broken(mul_model, tmp_path):
    """A fresh copy of the mul model and a way to damage one of its files."""
    path = tmp_path / "model"
    shutil.copytree(mul_model, path)

    def damage(name, how):
        file = path / name
        data = file.read_bytes()
        if how == "remove":
            file.unlink()
        elif how == "empty":
            file.write_bytes(b"")
        elif how == "truncate":
            file.write_bytes(data[: len(data) // 3])
        elif how == "garbage":
            file.write_bytes(bytes(b ^ 0x5A for b in data))
        return str(path)

    return damage


def _assert_typed(info, *words):
    error = info.value
    assert isinstance(error, errors.InvalidSavedModelError)
    assert isinstance(error, ValueError)  # also the builtin
    message = str(error)
    assert message.startswith("Expected"), message
    assert "Received: handle=" in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("how", ["empty", "truncate", "garbage"])
def test_damaged_saved_model_pb(broken, how):
    path = broken("saved_model.pb", how)
    with pytest.raises(errors.InvalidSavedModelError) as info:
        hk.load(path)
    _assert_typed(info, "saved_model.pb", "again")


def test_graph_file_that_is_a_folder(broken):
    path = broken("saved_model.pb", "remove")
    os.mkdir(os.path.join(path, "saved_model.pb"))
    with pytest.raises(errors.InvalidSavedModelError) as info:
        hk.load(path)
    _assert_typed(info, "saved_model.pb to be a readable file")


def test_variables_of_another_model(mul_model, tmp_path):
    # The same variable names with other shapes: TensorFlow's ValueError
    # ("incompatible tensor") becomes ours.
    import models

    path = shutil.copytree(mul_model, tmp_path / "model")
    other = models.save_mul_model(str(tmp_path / "other"), [1.0, 2.0, 3.0])
    shutil.rmtree(path / "variables")
    shutil.copytree(os.path.join(other, "variables"), path / "variables")
    with pytest.raises(errors.InvalidSavedModelError) as info:
        hk.load(str(path))
    _assert_typed(info, "variables", "do not match")


def test_text_graph_nested_too_deep(tmp_path):
    # text_format's parser recurses once per level: past Python's limit it
    # raised RecursionError from hk.load and hk.scan.
    depth = 3000
    nested = "list_value { values { " * depth + "none_value {}" + " } }" * depth
    (tmp_path / "saved_model.pbtxt").write_text(
        "meta_graphs { object_graph_def { concrete_functions { key: 'f' "
        f"value {{ canonicalized_input_signature {{ {nested} }} }} }} }} }}"
    )
    for call in (hk.load, hk.scan):
        with pytest.raises(errors.InvalidSavedModelError) as info:
            call(str(tmp_path))
        _assert_typed(info, "saved_model.pbtxt", "do not parse")


@pytest.mark.parametrize(
    "name, how, word",
    [
        (DATA, "remove", "missing"),
        (DATA, "truncate", "variables"),
        (DATA, "garbage", "variables"),
        (INDEX, "remove", "variables.index"),
        (INDEX, "garbage", "variables.index"),
    ],
)
def test_damaged_variables(broken, name, how, word):
    path = broken(name, how)
    with pytest.raises(errors.InvalidSavedModelError) as info:
        hk.load(path)
    _assert_typed(info, word)


class _Wide(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.ones(4096, "float32"))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
        return x * tf.reduce_sum(self.w)


def test_truncated_shard_is_found_before_loading(tmp_path, monkeypatch):
    path = str(tmp_path / "wide")
    tf.saved_model.save(_Wide(), path)
    data = os.path.join(path, DATA)
    with open(data, "rb") as f:
        content = f.read()
    with open(data, "wb") as f:
        f.write(content[: len(content) // 2])

    def must_not_load(*args, **kwargs):
        raise AssertionError("loaded a truncated model")

    monkeypatch.setattr(tf.saved_model, "load", must_not_load)
    with pytest.raises(errors.InvalidSavedModelError) as info:
        hk.load(path)
    _assert_typed(info, "truncated", "16384 bytes")


def test_missing_variables_folder(mul_model, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(mul_model, path)
    shutil.rmtree(path / "variables")
    with pytest.raises(errors.InvalidSavedModelError) as info:
        hk.HubLayer(str(path))
    _assert_typed(info, "variables.index")


def test_a_file_is_not_a_saved_model(tmp_path):
    file = tmp_path / "model.pb"
    file.write_bytes(b"x")
    with pytest.raises(errors.InvalidSavedModelError) as info:
        hk.load(str(file))
    _assert_typed(info, "a file")


def test_damaged_download_is_not_cached(mul_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    members = [
        (fields, b"\x08garbage" if fields["name"] == "saved_model.pb" else data)
        for fields, data in saved_model_members(mul_model)
    ]
    server = ScriptedServer()
    try:
        url = server.route("/m", Serve(crafted_tar_gz(members)))
        with pytest.raises(errors.InvalidSavedModelError):
            hk.resolve(url, progress=False)
    finally:
        server.stop()
    left = os.listdir(tmp_path / "cache")
    assert all(name.endswith(".lock") for name in left), left


def test_cache_dir_that_is_a_file(tmp_path, monkeypatch):
    file = tmp_path / "not_a_folder"
    file.write_text("x")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(file))
    monkeypatch.delenv("HUBKIT_OFFLINE", raising=False)
    with pytest.raises(errors.CacheError, match="TFHUB_CACHE_DIR") as info:
        hk.resolve("http://127.0.0.1:9/m", progress=False)
    assert isinstance(info.value, OSError)
    assert "Received: cache_dir=" in str(info.value)
    with pytest.raises(errors.CacheError, match="is a file"):
        hk.ModelCache().entries()


@pytest.mark.parametrize(
    "url, word",
    [
        ("http://127.0.0.1:9/modèle/1", "character 'è'"),
        ("http://127.0.0.1:9/my model/1", "a space"),
        ("http://127.0.0.1:9/m\n1", "character '\\n'"),
        ("http:///models/m/1", "with a host"),
        ("https://", "with a host"),
        ("http://u:s3cret@/m", "with a host"),
        ("http://127.0.0.1:port/m", "well-formed"),
        ("http://[::1/m", "well-formed"),
    ],
)
def test_malformed_urls(url, word, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(errors.HandleError) as info:
        hk.resolve(url, progress=False)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith("Expected") and "Received: handle=" in message
    assert word in message, message
    assert "s3cret" not in message
    assert not (tmp_path / "cache").exists()  # refused before any I/O


@pytest.mark.parametrize("handle", [None, b"http://h/m", 3, ""])
def test_non_string_handles(handle):
    with pytest.raises(errors.HandleError, match="Expected a non-empty path"):
        hk.resolve(handle)


def test_real_models_pass_the_checks(real_models):
    from keras_hubkit import _validate

    for folder in sorted(real_models.iterdir()):
        if folder.is_dir():
            _validate.check_saved_model_dir(str(folder), str(folder))
