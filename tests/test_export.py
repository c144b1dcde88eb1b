"""hk.export_saved_model: reusable SavedModels out of fine-tuned models."""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import errors

import models

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _images(n=16, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 3), "float32")


def _fit(model, x, y, epochs=1, optimizer="adam", loss=SCE):
    model.compile(optimizer, loss)
    model.fit(x, y, epochs=epochs, verbose=0)
    return model


def _assert_round_trip(exported, reference, x, losses):
    """Same inference outputs, same losses, reusable API present."""
    layer = hk.HubLayer(exported, trainable=True)
    np.testing.assert_allclose(
        layer(x), reference(x, training=False), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        sorted(float(v) for v in layer.losses),
        sorted(float(v) for v in losses),
        rtol=1e-5,
    )
    obj = tf.saved_model.load(exported)
    assert callable(obj)
    assert obj.variables and obj.trainable_variables is not None
    assert "serving_default" in obj.signatures
    assert hk.scan(exported).safe
    return layer


def test_hub_layer_after_adam_fine_tuning(image_model, tmp_path):
    base = hk.HubLayer(image_model, trainable=True)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), base, keras.layers.Dense(3)]
    )
    _fit(model, _images(), np.arange(16) % 3, epochs=2)
    path = hk.export_saved_model(base, tmp_path / "base")
    x = _images(4, seed=1)
    layer = _assert_round_trip(path, base, x, base.losses)
    assert len(layer.trainable_weights) == 4
    assert len(layer.non_trainable_weights) == 2
    # Batch statistics: training mode differs, as in the source.
    assert not np.allclose(layer(x, training=True), layer(x, training=False))
    original = tf.saved_model.load(image_model)
    assert not np.allclose(
        original.kernel.numpy(), hk.load(path).kernel.numpy()
    )


def test_loaded_object_keeps_signatures_and_assets(text_model, tmp_path):
    obj = hk.load(text_model)
    layer = hk.HubLayer(obj, trainable=True)
    model = keras.Sequential([layer, keras.layers.Dense(2)])
    _fit(model, tf.constant(["the cat", "dog ran"]), np.array([0, 1]))
    path = hk.export_saved_model(obj, tmp_path / "text")
    assert os.listdir(os.path.join(path, "assets")) == ["vocab_src.txt"]
    again = hk.load(path)
    sentences = tf.constant(["the cat sat", "hello"])
    np.testing.assert_allclose(again(sentences), obj(sentences), rtol=1e-6)
    np.testing.assert_allclose(again.embeddings.numpy(), obj.embeddings.numpy())


def test_keras_sequential_with_regularizer_bn_and_dropout(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(
                8, kernel_regularizer=keras.regularizers.L2(0.01)
            ),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(2),
        ]
    )
    rng = np.random.default_rng(0)
    _fit(model, rng.random((32, 4)), rng.random((32, 2)), loss="mse")
    path = hk.export_saved_model(model, tmp_path / "seq")
    x = rng.random((6, 4)).astype("float32")
    layer = _assert_round_trip(path, model, x, model.losses)
    assert len(layer.trainable_weights) == len(model.trainable_weights)
    assert not np.allclose(layer(x, training=True), layer(x))
    served = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
    np.testing.assert_allclose(
        served(x)["output_0"], model(x), rtol=1e-4, atol=1e-5
    )


def test_frozen_part_is_not_trainable_in_export(tmp_path):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)]
    )
    model.layers[0].trainable = False
    obj = tf.saved_model.load(hk.export_saved_model(model, tmp_path / "partly"))
    assert len(obj.trainable_variables) == 2
    assert len(obj.variables) == 4


def test_piece_of_a_larger_model(tmp_path):
    inputs = keras.Input((5,))
    features = keras.layers.Dense(3, activation="relu", name="piece")(inputs)
    outputs = keras.layers.Dense(2)(features)
    big = keras.Model(inputs, outputs)
    piece = keras.Model(big.input, big.get_layer("piece").output)
    path = hk.export_saved_model(piece, tmp_path / "piece")
    x = np.ones((2, 5), "float32")
    _assert_round_trip(path, piece, x, [])


def test_string_inputs(text_model, tmp_path):
    model = keras.Sequential(
        [hk.HubLayer(text_model, trainable=True), keras.layers.Dense(2)]
    )
    _fit(model, tf.constant(["the cat", "hello"]), np.array([0, 1]))
    path = hk.export_saved_model(model, tmp_path / "classifier")
    x = tf.constant(["the cat sat on the mat"])
    _assert_round_trip(path, model, x, model.losses)


def test_dict_inputs(tmp_path):
    inputs = {
        "a": keras.Input((2,), name="a"),
        "b": keras.Input((3,), name="b"),
    }
    merged = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    model = keras.Model(inputs, keras.layers.Dense(1)(merged))
    path = hk.export_saved_model(model, tmp_path / "dict")
    x = {"a": np.ones((2, 2), "float32"), "b": np.ones((2, 3), "float32")}
    layer = hk.HubLayer(path)
    np.testing.assert_allclose(layer(x), model(x), rtol=1e-5)


def test_bert_like_dict_encoder_re_export(bert_model, tmp_path):
    obj = hk.load(bert_model)
    path = hk.export_saved_model(obj, tmp_path / "bert")
    layer = hk.HubLayer(path, output_key="pooled_output")
    data = {n: tf.constant([[1, 2]]) for n in models.BERT_INPUT_NAMES}
    data["input_type_ids"] = tf.constant([[0, 1]])
    np.testing.assert_allclose(
        layer(data), obj(data)["pooled_output"], rtol=1e-6
    )


def test_labels_and_tflite(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = hk.export_saved_model(
        model, tmp_path / "clf", class_names=["cat", "dog"], tflite=True
    )
    labels = open(os.path.join(path, "labels.txt")).read().splitlines()
    assert labels == ["cat", "dog"]
    interpreter = tf.lite.Interpreter(os.path.join(path, "model.tflite"))
    runner = interpreter.get_signature_runner("serving_default")
    x = np.ones((1, 3), "float32")
    out = next(
        iter(runner(**{next(iter(runner.get_input_details())): x}).values())
    )
    np.testing.assert_allclose(out, model(x), rtol=1e-5)


# --------------------------------------------------- refusal and atomicity
def test_existing_destination_needs_overwrite(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(errors.ExportError, match="overwrite=True"):
        hk.export_saved_model(model, dest)
    assert (dest / "keep.txt").read_text() == "mine"
    # overwrite replaces an earlier export, never a folder of other files
    # (`hubkit export SRC . --overwrite` must not wipe the working folder).
    with pytest.raises(errors.OutputExistsError, match=r"keep\.txt"):
        hk.export_saved_model(model, dest, overwrite=True)
    assert (dest / "keep.txt").read_text() == "mine"
    (dest / "keep.txt").unlink()
    hk.export_saved_model(model, dest)
    (dest / "stale.txt").write_text("from the earlier export")
    hk.export_saved_model(model, dest, overwrite=True)
    assert not (dest / "stale.txt").exists()
    assert (dest / "saved_model.pb").exists()
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_nan_weights_are_refused(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    kernel = model.layers[0].kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(errors.ExportError, match="NaN"):
        hk.export_saved_model(model, tmp_path / "nan")
    assert os.listdir(tmp_path) == []


class _HiddenVariable(tf.train.Checkpoint):
    """Lists one variable in `variables` and keeps another out of it."""

    def __init__(self):
        super().__init__()
        self.listed = tf.Variable([1.0, 2.0], name="listed")
        self.hidden = tf.Variable([1.0, 2.0], name="hidden")
        self.variables = [self.listed]

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def __call__(self, x):
        return x * self.listed + self.hidden


class _NoVariablesAttribute(tf.Module):
    def __init__(self):
        super().__init__()
        self.scale = tf.Variable([1.0, 2.0], name="scale")

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def __call__(self, x):
        return x * self.scale


@pytest.mark.parametrize(
    "cls, name", [(_HiddenVariable, "hidden"), (_NoVariablesAttribute, "scale")]
)
def test_nan_anywhere_in_a_loaded_object_is_refused(tmp_path, cls, name):
    source = cls()
    tf.saved_model.save(source, str(tmp_path / "src"))
    loaded = tf.saved_model.load(str(tmp_path / "src"))
    if cls is _NoVariablesAttribute:
        # tf.Module's `variables` is a Python property: a loaded copy has
        # no such attribute.
        assert not hasattr(loaded, "variables")
    hk.export_saved_model(loaded, tmp_path / "fine")  # finite: exported
    getattr(loaded, name).assign([np.nan, 1.0])
    with pytest.raises(errors.ExportError, match=name):
        hk.export_saved_model(loaded, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


def test_inf_in_a_non_trainable_keras_weight_is_refused(tmp_path):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.BatchNormalization()]
    )
    variance = model.layers[0].moving_variance
    variance.assign(np.array([1.0, np.inf, 1.0], "float32"))
    with pytest.raises(errors.ExportError, match="moving_variance"):
        hk.export_saved_model(model, tmp_path / "bn")


def _leftover(dest, pid, host=None):
    host = host or socket.gethostname()
    path = dest.parent / f"{dest.name}.{pid}.0123abcd.{host}.tmp"
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"half")
    return path


def test_leftovers_of_dead_exports_are_removed(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dest = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid is free, as after a kill
    dead = _leftover(dest, child.pid)
    live = _leftover(dest, os.getppid())  # a running process: kept
    remote = _leftover(dest, child.pid, host="elsewhere.example")
    hk.export_saved_model(model, dest)
    assert not dead.exists()
    assert live.exists() and remote.exists()
    assert (dest / "saved_model.pb").exists()


_KILLED_EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    import keras, tensorflow as tf
    import keras_hubkit as hk

    real_save = tf.saved_model.save

    def save_then_die(obj, path, **kwargs):
        real_save(obj, path, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-export

    tf.saved_model.save = save_then_die
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    hk.export_saved_model(model, sys.argv[1], overwrite=True)
    """
)


@pytest.mark.slow
def test_export_killed_mid_write_is_cleaned_up_next_time(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dest = tmp_path / "out"
    hk.export_saved_model(model, dest)
    before = (dest / "saved_model.pb").read_bytes()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": repo}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_EXPORT, str(dest)],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(leftovers) == 1  # what the killed process left
    assert (dest / "saved_model.pb").read_bytes() == before  # untouched
    hk.export_saved_model(model, dest, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_failure_mid_save_keeps_previous_export(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dest = tmp_path / "out"
    hk.export_saved_model(model, dest)
    before = open(dest / "saved_model.pb", "rb").read()
    real_save = tf.saved_model.save

    def broken_save(obj, path, **kwargs):
        real_save(obj, path, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        hk.export_saved_model(model, dest, overwrite=True)
    assert open(dest / "saved_model.pb", "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_failed_swap_puts_the_previous_export_back(tmp_path, monkeypatch):
    import ctypes.util

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dest = tmp_path / "out"
    hk.export_saved_model(model, dest)
    before = (dest / "saved_model.pb").read_bytes()
    # No renameat2: the export swaps with two renames; fail the second.
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    real_rename = os.rename

    def rename(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="No space"):
        hk.export_saved_model(model, dest, overwrite=True)
    assert (dest / "saved_model.pb").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_layer_without_known_inputs_needs_a_signature(tmp_path):
    layer = keras.layers.Dense(2)
    with pytest.raises(errors.ExportError, match="input_signature"):
        hk.export_saved_model(layer, tmp_path / "dense")
    path = hk.export_saved_model(
        layer,
        tmp_path / "dense",
        input_signature=tf.TensorSpec([None, 3], tf.float32),
    )
    assert hk.HubLayer(path)(np.ones((1, 3), "float32")).shape == (1, 2)
