"""HubLayer: the hub.KerasLayer contract on Keras 3."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import hostile
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import errors
from keras_hubkit import keras_file

import models

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _images(n=8, size=8, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), "float32")


# ------------------------------------------------------- the TF Hub guide
def test_guide_mymulmodel_example(mul_model):
    layer = hk.HubLayer(mul_model)
    np.testing.assert_allclose(layer([10.0, 20.0]), [20.0, 40.0])
    assert layer.trainable_weights == []
    # As hub.KerasLayer: one 0.0 per regularization function while frozen.
    assert [float(x) for x in layer.losses] == [0.0]
    layer.trainable = True
    assert [float(w.numpy()) for w in layer.trainable_weights] == [2.0]
    np.testing.assert_allclose(
        [float(x) for x in layer.losses], [0.004], rtol=1e-6
    )
    layer.trainable = False
    assert [float(x) for x in layer.losses] == [0.0]


def test_regularization_loss_counts_in_fit_only_when_trainable(mul_model):
    obj = hk.load(mul_model)
    layer = hk.HubLayer(obj, trainable=True)
    model = keras.Sequential([keras.Input((1,)), layer])
    # Zero inputs and targets: the data loss has no gradient, so only the
    # SavedModel's regularization loss can move the weight.
    x = np.zeros((4, 1), "float32")
    model.compile(keras.optimizers.SGD(10.0), "mse")
    model.fit(x, x, epochs=3, verbose=0)
    assert float(obj.v.numpy()) < 2.0
    assert len(model.losses) == 1

    frozen = hk.HubLayer(hk.load(mul_model))
    model = keras.Sequential([keras.Input((1,)), frozen])
    model.compile(keras.optimizers.SGD(10.0), "mse")
    model.fit(x, x, epochs=1, verbose=0)
    assert [float(x) for x in model.losses] == [0.0]
    assert float(frozen.resolved_object.v.numpy()) == 2.0


# -------------------------------------------------------- model building
def test_sequential_of_strings_without_input(text_model):
    model = keras.Sequential(
        [hk.HubLayer(text_model, trainable=True), keras.layers.Dense(2)]
    )
    model.compile("adam", SCE)
    x = tf.constant(["the cat sat", "dog ran", "hello", "the mat"])
    history = model.fit(x, np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.predict(x, verbose=0).shape == (4, 2)


def test_sequential_with_input_shape_kwarg_and_string_dtype(text_model):
    model = keras.Sequential(
        [
            hk.HubLayer(text_model, input_shape=[], dtype=tf.string),
            keras.layers.Dense(1),
        ]
    )
    assert model.inputs[0].dtype == "string"
    assert model.predict(tf.constant(["hello"]), verbose=0).shape == (1, 1)


def test_functional_model_with_string_input_and_summary(text_model, capsys):
    inputs = keras.Input(shape=(), dtype="string")
    outputs = keras.layers.Dense(3)(hk.HubLayer(text_model)(inputs))
    model = keras.Model(inputs, outputs)
    model.summary()
    assert "HubLayer" in capsys.readouterr().out
    assert model(tf.constant(["hello world"])).shape == (1, 3)


def test_python_list_of_sentences(text_model):
    out = hk.HubLayer(text_model)(["the cat sat on the mat", "hello"])
    assert out.shape == (2, 4)


def test_subclassed_model(image_model):
    class Classifier(keras.Model):
        def __init__(self):
            super().__init__()
            self.base = hk.HubLayer(image_model, trainable=True)
            self.head = keras.layers.Dense(3)

        def call(self, x, training=False):
            return self.head(self.base(x, training=training))

    model = Classifier()
    model.compile("adam", SCE)
    model.fit(_images(), np.arange(8) % 3, epochs=1, verbose=0)
    assert len(model.trainable_weights) == 4 + 2


def test_dict_inputs_like_bert(bert_model):
    inputs = {
        n: keras.Input((None,), dtype="int32", name=n)
        for n in models.BERT_INPUT_NAMES
    }
    encoder = hk.HubLayer(bert_model, trainable=True)
    outputs = encoder(inputs)
    assert set(outputs) == {"pooled_output", "sequence_output"}
    model = keras.Model(inputs, keras.layers.Dense(2)(outputs["pooled_output"]))
    data = {
        "input_word_ids": np.array([[1, 2, 3, 0]] * 4, "int32"),
        "input_mask": np.array([[1, 1, 1, 0]] * 4, "int32"),
        "input_type_ids": np.zeros((4, 4), "int32"),
    }
    before = encoder.resolved_object.word.numpy().copy()
    model.compile("adam", SCE)
    model.fit(data, np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    assert not np.allclose(before, encoder.resolved_object.word.numpy())


def test_output_key_without_signature(bert_model):
    layer = hk.HubLayer(bert_model, output_key="pooled_output")
    data = {
        "input_word_ids": tf.constant([[1, 2]]),
        "input_mask": tf.constant([[1, 1]]),
        "input_type_ids": tf.constant([[0, 1]]),
    }
    assert layer(data).shape == (1, 4)


def test_symbolic_calls_on_one_loaded_object_keep_their_own_specs(
    bert_model,
):
    # Output specs are kept per loaded object and call (each search trial
    # builds a model on the same object); what the call asks for decides.
    obj = hk.load(bert_model)

    def symbolic(seq_len, **kwargs):
        inputs = {
            n: keras.Input((seq_len,), dtype="int32", name=n)
            for n in models.BERT_INPUT_NAMES
        }
        return inputs, hk.HubLayer(obj, **kwargs)(inputs)

    _, pooled = symbolic(None, output_key="pooled_output")
    _, sequence = symbolic(None, output_key="sequence_output")
    _, fixed = symbolic(6, output_key="sequence_output")
    inputs, again = symbolic(None, output_key="pooled_output")
    assert pooled.shape == again.shape == (None, 4)
    assert sequence.shape == (None, None, 4) and fixed.shape == (None, 6, 4)
    assert again is not pooled  # a new tensor for each model's graph
    model = keras.Model(inputs, keras.layers.Dense(2)(again))
    data = {n: np.ones((3, 5), "int32") for n in models.BERT_INPUT_NAMES}
    assert model(data).shape == (3, 2)


def test_same_layer_twice_shares_weights(image_model):
    layer = hk.HubLayer(image_model, trainable=True)
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    model = keras.Model([a, b], keras.layers.Add()([layer(a), layer(b)]))
    assert len(model.weights) == len(layer.weights) == 6


# ------------------------------------------------------------ trainable
def test_trainable_split_follows_publisher_list(image_model):
    frozen = hk.HubLayer(image_model)
    assert frozen.trainable_weights == []
    assert len(frozen.non_trainable_weights) == 6
    layer = hk.HubLayer(image_model, trainable=True)
    names = sorted(layer.source_name(v) for v in layer.trainable_weights)
    assert names == [
        "block1/bn/beta",
        "block1/bn/gamma",
        "block1/conv/kernel",
        "block2/dense/kernel",
    ]
    assert sorted(
        layer.source_name(v) for v in layer.non_trainable_weights
    ) == [
        "block1/bn/moving_mean",
        "block1/bn/moving_variance",
    ]
    layer.trainable = False
    assert layer.trainable_weights == []
    layer.trainable = True
    assert len(layer.trainable_weights) == 4


def test_training_mode_only_when_trainable_and_training(image_model):
    obj = hk.load(image_model)
    x = _images()
    frozen = hk.HubLayer(obj)
    before = obj.moving_mean.numpy().copy()
    frozen(x, training=True)
    np.testing.assert_array_equal(before, obj.moving_mean.numpy())

    layer = hk.HubLayer(obj, trainable=True)
    layer(x, training=False)
    np.testing.assert_array_equal(before, obj.moving_mean.numpy())
    layer(x, training=True)
    assert not np.allclose(before, obj.moving_mean.numpy())


def test_arguments_are_forwarded(image_model):
    obj = hk.load(image_model)
    x = _images()
    hk.HubLayer(obj, trainable=True, arguments={"batch_norm_momentum": 0.0})(
        x, training=True
    )
    # With momentum 0 the moving mean becomes the batch mean exactly.
    batch_mean = tf.reduce_mean(
        tf.nn.conv2d(x, obj.kernel, 1, "SAME"), axis=[0, 1, 2]
    )
    np.testing.assert_allclose(obj.moving_mean.numpy(), batch_mean, rtol=1e-5)


@pytest.mark.parametrize(
    "optimizer", ["adam", "adamw", "sgd", "rmsprop", "adagrad", "nadam"]
)
def test_fine_tunes_with_every_optimizer(image_model, optimizer):
    obj = hk.load(image_model)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            hk.HubLayer(obj, trainable=True),
            keras.layers.Dense(3),
        ]
    )
    kernel = obj.kernel.numpy().copy()
    model.compile(optimizer, SCE)
    model.fit(_images(), np.arange(8) % 3, epochs=1, verbose=0)
    assert not np.allclose(kernel, obj.kernel.numpy())


def test_jit_compile_where_ops_allow(image_model, text_model):
    assert not hk.HubLayer(text_model).supports_jit
    layer = hk.HubLayer(image_model, trainable=True)
    assert layer.supports_jit
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), layer, keras.layers.Dense(3)]
    )
    model.compile("adam", SCE, jit_compile=True)
    assert model.jit_compile
    model.fit(_images(), np.arange(8) % 3, epochs=1, verbose=0)


def test_mixed_float16_keeps_variables_float32(image_model):
    keras.mixed_precision.set_global_policy("mixed_float16")
    layer = hk.HubLayer(image_model, trainable=True)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), layer, keras.layers.Dense(3)]
    )
    model.compile("adam", SCE)
    model.fit(_images(), np.arange(8) % 3, epochs=1, verbose=0)
    assert {w.dtype for w in layer.weights} == {"float32"}
    assert layer(_images()).dtype == tf.float32


@pytest.mark.slow
def test_mirrored_strategy_keeps_statistics_consistent(image_model):
    script = textwrap.dedent(
        f"""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, numpy as np
        import keras_hubkit as hk
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            layer = hk.HubLayer({image_model!r}, trainable=True,
                                arguments={{"batch_norm_momentum": 0.5}})
            model = keras.Sequential([keras.Input((8, 8, 3)), layer,
                                      keras.layers.Dense(3)])
            loss = keras.losses.SparseCategoricalCrossentropy(True)
            model.compile("adam", loss)
        x = np.random.default_rng(0).random((16, 8, 8, 3), "float32")
        before = layer.resolved_object.moving_mean.numpy().copy()
        model.fit(x, np.arange(16) % 3, batch_size=8, epochs=2, verbose=0)
        copies = [v.numpy() for v in layer.resolved_object.moving_mean.values]
        assert len(copies) == 2
        assert not np.allclose(before, copies[0])
        np.testing.assert_allclose(copies[0], copies[1], rtol=1e-6)
        kernels = [v.numpy() for v in layer.resolved_object.kernel.values]
        np.testing.assert_allclose(kernels[0], kernels[1], rtol=1e-6)
        print("REPLICAS-AGREE")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "REPLICAS-AGREE" in out.stdout, out.stderr[-3000:]


# ----------------------------------------------------------- signatures
def test_signature_with_output_key_and_dict(signature_model):
    x = np.array([[1.0, 1.0]], "float32")
    logits = hk.HubLayer(
        signature_model, signature="serving_default", output_key="logits"
    )(x)
    np.testing.assert_allclose(logits, [[1.5, 1.0]])
    outputs = hk.HubLayer(
        signature_model,
        signature="serving_default",
        signature_outputs_as_dict=True,
    )(x)
    assert set(outputs) == {"logits", "probabilities"}
    norm = hk.HubLayer(signature_model, signature="norm")(x)
    np.testing.assert_allclose(norm, [np.sqrt(2.0)], rtol=1e-6)


def test_missing_signature_lists_available(signature_model):
    with pytest.raises(errors.SignatureError, match=r"norm.*serving_default"):
        hk.HubLayer(signature_model, signature="nope")
    with pytest.raises(errors.SignatureError, match="Pass `signature=`"):
        hk.HubLayer(signature_model)


def test_missing_output_key_lists_available(signature_model):
    layer = hk.HubLayer(
        signature_model, signature="serving_default", output_key="nope"
    )
    with pytest.raises(ValueError, match=r"logits.*probabilities"):
        layer(np.ones((1, 2), "float32"))


def test_several_outputs_need_a_choice(signature_model):
    with pytest.raises(
        errors.SignatureError, match=r"either `output_key` or.*logits"
    ):
        hk.HubLayer(signature_model, signature="serving_default")


def test_signature_layer_cannot_be_fine_tuned(signature_model):
    # As hub.KerasLayer: constructing works (`trainable` is mutable), calling
    # while trainable fails, and setting trainable=False makes it usable.
    layer = hk.HubLayer(signature_model, signature="norm", trainable=True)
    x = np.ones((1, 2), "float32")
    with pytest.raises(errors.TrainabilityError, match="signature"):
        layer(x)
    layer.trainable = False
    np.testing.assert_allclose(layer(x), [np.sqrt(2.0)], rtol=1e-6)


def test_output_shape_is_honoured(mul_model):
    inputs = keras.Input((None,))
    out = hk.HubLayer(mul_model, output_shape=[5])(inputs)
    assert tuple(out.shape) == (None, 5)


# ------------------------------------------------- loaded object handles
def test_loaded_object_weights_are_its_variables(image_model, tmp_path):
    obj = hk.load(image_model)
    plain = tf.saved_model.load(image_model)
    assert sorted(obj.signatures) == sorted(plain.signatures)
    assert [v.name for v in obj.variables] == [v.name for v in plain.variables]
    layer = hk.HubLayer(obj, trainable=True)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), layer, keras.layers.Dense(3)]
    )
    model.compile("adam", SCE)
    model.fit(_images(), np.arange(8) % 3, epochs=2, verbose=0)
    tf.saved_model.save(obj, str(tmp_path / "finetuned"))
    again = tf.saved_model.load(str(tmp_path / "finetuned"))
    np.testing.assert_allclose(again.kernel.numpy(), obj.kernel.numpy())
    assert not np.allclose(
        again.kernel.numpy(), tf.saved_model.load(image_model).kernel.numpy()
    )


def test_callable_handle_rejects_tags(mul_model):
    with pytest.raises(errors.HandleError, match="tags"):
        hk.HubLayer(hk.load(mul_model), tags=["serve"])


# ---------------------------------------------------- config and .keras
def test_get_config_round_trip(image_model):
    layer = hk.HubLayer(
        image_model,
        trainable=True,
        arguments={"batch_norm_momentum": 0.9},
        output_shape=[6],
        name="base",
    )
    config = layer.get_config()
    assert config["handle"] == image_model
    clone = hk.HubLayer.from_config(config, safe_mode=False)
    assert clone.get_config() == config
    assert clone.trainable
    assert keras.saving.get_registered_name(hk.HubLayer) == (
        "keras_hubkit>HubLayer"
    )


def _fine_tuned_image_model(image_model):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            hk.HubLayer(image_model, trainable=True),
            keras.layers.Dense(3),
        ]
    )
    model.compile("adam", SCE)
    model.fit(_images(), np.arange(8) % 3, epochs=2, verbose=0)
    return model


@pytest.fixture
def copied_image_model(image_model, tmp_path):
    """A private copy of the image model, which a test may delete."""
    path = tmp_path / "source" / "image"
    shutil.copytree(image_model, path)
    return str(path)


def test_keras_file_carries_the_saved_model(copied_image_model, tmp_path):
    model = _fine_tuned_image_model(copied_image_model)
    first = tmp_path / "first"
    first.mkdir()
    model.save(first / "model.keras")
    # Move the file, delete the SavedModel it was built from: it still loads,
    # in Keras's default safe mode (the stored copy passes the scan).
    moved = tmp_path / "elsewhere" / "model.keras"
    moved.parent.mkdir()
    shutil.move(first / "model.keras", moved)
    shutil.rmtree(copied_image_model)
    reloaded = keras.models.load_model(moved)
    x = _images(seed=3)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), reloaded.predict(x, verbose=0), rtol=1e-5
    )
    layer = reloaded.layers[0]
    assert layer.trainable
    assert layer.get_config()["handle"] == copied_image_model
    # Fine-tuned values are in the stored SavedModel itself, and it is still
    # a reusable one (callable with `training`, publisher's lists kept).
    obj = layer.resolved_object
    assert len(obj.trainable_variables) == 4
    assert len(obj.regularization_losses) == 1
    np.testing.assert_allclose(
        obj.kernel.numpy(),
        model.layers[0].resolved_object.kernel.numpy(),
    )
    # Training goes on after the reload (optimizer state came back too).
    reloaded.fit(_images(), np.arange(8) % 3, epochs=1, verbose=0)
    # clone_model (as keras-tuner uses it) still finds the SavedModel.
    clone = keras.models.clone_model(reloaded)
    assert clone.layers[0].resolved_object is not obj


def test_keras_file_keeps_assets(text_model, tmp_path):
    source = tmp_path / "text"
    shutil.copytree(os.path.dirname(text_model), source)
    inputs = keras.Input(shape=(), dtype="string")
    layer = hk.HubLayer(str(source / "model"))
    model = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))
    model.save(tmp_path / "text.keras")
    shutil.rmtree(source)  # the vocabulary file goes with it
    reloaded = keras.models.load_model(tmp_path / "text.keras")
    x = tf.constant(["the cat sat", "hello"])
    np.testing.assert_allclose(model(x), reloaded(x), rtol=1e-6)
    assert not np.allclose(reloaded(x)[0], reloaded(x)[1])


def test_two_layers_of_one_handle_and_the_folder_format(
    copied_image_model, tmp_path
):
    tuned = hk.HubLayer(copied_image_model, trainable=True)
    tuned.resolved_object.kernel.assign(tuned.resolved_object.kernel * 2)
    plain = hk.HubLayer(copied_image_model)
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Concatenate()([tuned(inputs), plain(inputs)])
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "two.keras")
    keras.saving.save_model(model, tmp_path / "folder", zipped=False)
    shutil.rmtree(copied_image_model)
    x = _images(2)
    for path in (tmp_path / "two.keras", tmp_path / "folder"):
        assert len(keras_file.list_saved_models(path)) == 2
        reloaded = keras.models.load_model(path)
        np.testing.assert_allclose(reloaded(x), model(x), rtol=1e-5)


def test_keras_file_written_by_0_1_0_still_loads(image_model, tmp_path):
    model = _fine_tuned_image_model(image_model)
    model.save(tmp_path / "new.keras")
    # keras_hubkit 0.1.0 wrote no SavedModel into the archive, only the
    # handle (an absolute path) in config.json.
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(tmp_path / "new.keras") as src:
        with zipfile.ZipFile(old, "w") as dst:
            for item in src.infolist():
                if not item.filename.startswith("assets/"):
                    dst.writestr(item, src.read(item))
    assert keras_file.list_saved_models(old) == []
    reloaded = keras.models.load_model(old)
    x = _images(seed=4)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), reloaded.predict(x, verbose=0), rtol=1e-5
    )


def test_safe_mode_refuses_models_that_need_an_opt_in(tmp_path):
    path = hostile.save_call_reads_file(
        str(tmp_path / "reader"), str(tmp_path / "secret.txt")
    )
    (tmp_path / "secret.txt").write_text("abc")
    layer = hk.HubLayer(path, allow_ops=["ReadFile"])
    model = keras.Sequential([keras.Input(()), layer])
    model.save(tmp_path / "reader.keras")
    with pytest.raises(
        errors.UnsafeDeserializationError, match=r"ReadFile.*safe_mode=False"
    ):
        keras.models.load_model(tmp_path / "reader.keras")
    with pytest.raises(errors.UnsafeDeserializationError, match="allow_ops"):
        keras.models.clone_model(model)
    with pytest.raises(errors.UnsafeDeserializationError):
        hk.HubLayer.from_config(layer.get_config())
    reloaded = keras.models.load_model(
        tmp_path / "reader.keras", safe_mode=False
    )
    np.testing.assert_allclose(reloaded(np.zeros((2,), "float32")), [3, 3])


def test_safe_mode_refuses_models_that_cannot_be_scanned(mul_model, tmp_path):
    path = tmp_path / "mul"
    shutil.copytree(mul_model, path)
    config = hk.HubLayer(str(path)).get_config()
    (path / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(errors.UnsafeDeserializationError, match="scanned"):
        hk.HubLayer.from_config(config)


def test_clone_model_and_json_in_safe_mode(image_model):
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), hk.HubLayer(image_model, output_shape=[6])]
    )
    x = _images()
    clone = keras.models.clone_model(model)
    np.testing.assert_allclose(clone(x), model(x), rtol=1e-6)
    again = keras.models.model_from_json(model.to_json())
    np.testing.assert_allclose(again(x), model(x), rtol=1e-6)


def test_config_holds_no_credentials(mul_model, tmp_path, monkeypatch):
    from http_server import ScriptedServer
    from http_server import Serve
    from http_server import tar_gz_of

    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    server = ScriptedServer()
    try:
        url = server.route("/m/1", Serve(tar_gz_of(mul_model)))
        layer = hk.HubLayer(url + "?token=s3cret", name="mul")
        model = keras.Sequential([keras.Input((2,)), layer])
        config = layer.get_config()
        assert "s3cret" not in json.dumps(config)
        assert config["handle"] == url + "?token=***"
        # In the process that knows the real handle, a clone still works.
        clone = keras.models.clone_model(model)
        np.testing.assert_allclose(clone(np.ones((1, 2))), [[2.0, 2.0]])
        model.save(tmp_path / "mul.keras")
    finally:
        server.stop()
    with zipfile.ZipFile(tmp_path / "mul.keras") as archive:
        for name in archive.namelist():
            assert b"s3cret" not in archive.read(name), name
    reloaded = keras.models.load_model(tmp_path / "mul.keras")
    np.testing.assert_allclose(reloaded(np.ones((1, 2))), [[2.0, 2.0]])


def test_stored_saved_model_is_scanned_when_read_back(mul_model, tmp_path):
    model = keras.Sequential([keras.Input(()), hk.HubLayer(mul_model)])
    model.save(tmp_path / "good.keras")
    [entry] = keras_file.list_saved_models(tmp_path / "good.keras")
    # Swap the stored SavedModel for one that reads files when called.
    hostile_dir = hostile.save_call_reads_file(
        str(tmp_path / "reader"), str(tmp_path / "secret.txt")
    )
    prefix = entry["folder"] + "/saved_model/"
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(tmp_path / "good.keras") as src:
        with zipfile.ZipFile(bad, "w") as dst:
            for item in src.infolist():
                if not item.filename.startswith(prefix):
                    dst.writestr(item, src.read(item))
            for root, _, files in os.walk(hostile_dir):
                for name in files:
                    full = os.path.join(root, name)
                    rel = os.path.relpath(full, hostile_dir)
                    dst.write(full, prefix + rel.replace(os.sep, "/"))
    with pytest.raises(errors.UnsafeDeserializationError, match="ReadFile"):
        keras.models.load_model(bad)
    # Outside safe mode the load-time scan still refuses it (no allow_ops).
    with pytest.raises(errors.UnsafeModelError, match="ReadFile"):
        keras.models.load_model(bad, safe_mode=False)


def test_string_model_output_shape_and_dtype(text_model):
    layer = hk.HubLayer(text_model)
    assert layer.compute_output_shape((None,)) == (None, 4)
    spec = layer.compute_output_spec(keras.KerasTensor((3,), dtype="string"))
    # The model loses the static batch size (ragged tokens): traced as is.
    assert (tuple(spec.shape), spec.dtype) == ((None, 4), "float32")


def test_time_distributed_summary_and_shapes(image_model, capsys):
    layer = hk.HubLayer(image_model)
    assert layer.compute_output_shape((None, 8, 8, 3)) == (None, 6)
    assert layer.compute_output_shape((4, 8, 8, 3)) == (4, 6)
    frames = keras.Input((5, 8, 8, 3))
    per_frame = keras.layers.TimeDistributed(layer)(frames)
    assert tuple(per_frame.shape) == (None, 5, 6)
    model = keras.Model(frames, per_frame)
    model.summary()
    assert "(None, 5, 6)" in capsys.readouterr().out
    clip = _images(10).reshape(2, 5, 8, 8, 3)
    np.testing.assert_allclose(
        model(clip).numpy().reshape(10, 6), layer(_images(10)), rtol=1e-5
    )


def test_stored_member_escaping_its_folder_is_refused(tmp_path):
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr(
            "assets/layers/h/hubkit_layer.json", json.dumps({"name": "h"})
        )
        archive.writestr("assets/layers/h/saved_model/../../../../evil", "x")
    with pytest.raises(errors.UnsafeArchiveError, match="escapes"):
        keras_file.saved_model_from_keras_file(bad, tmp_path / "out")
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "out").exists()


def test_saved_model_from_keras_file(copied_image_model, tmp_path):
    model = _fine_tuned_image_model(copied_image_model)
    model.save(tmp_path / "model.keras")
    [entry] = keras_file.list_saved_models(tmp_path / "model.keras")
    assert entry["name"] == model.layers[0].name
    assert entry["resaved"]
    out = keras_file.saved_model_from_keras_file(
        tmp_path / "model.keras", tmp_path / "out"
    )
    assert hk.scan(out).safe
    obj = hk.load(out)
    np.testing.assert_allclose(
        obj.kernel.numpy(), model.layers[0].resolved_object.kernel.numpy()
    )
    with pytest.raises(errors.ExportError, match="overwrite"):
        keras_file.saved_model_from_keras_file(tmp_path / "model.keras", out)
    with pytest.raises(errors.HandleError, match="layer_name"):
        keras_file.saved_model_from_keras_file(
            tmp_path / "model.keras", tmp_path / "o2", layer_name="nope"
        )
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(errors.HandleError, match="zip"):
        keras_file.list_saved_models(tmp_path / "plain.txt")


# ------------------------------------------------------------ TF1 format
def test_tf1_hub_module_for_inference(tf1_model):
    layer = hk.HubLayer(tf1_model)
    np.testing.assert_allclose(layer(tf.constant([1.0, 2.0])), [2.5, 3.0])
    trainable = hk.HubLayer(tf1_model, trainable=True)
    with pytest.raises(errors.TrainabilityError, match="TF1 Hub format"):
        trainable(tf.constant([1.0]))
    layer.trainable = True
    with pytest.raises(errors.TrainabilityError):
        layer(tf.constant([1.0]), training=True)


# ------------------------------------------------------------ bad input
def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hk.HubLayer(str(tmp_path / "nope"))


def test_folder_that_is_not_a_saved_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(errors.HandleError, match=r"saved_model\.pb"):
        hk.HubLayer(str(tmp_path))


def test_wrong_input_dtype_names_handle_and_spec(image_model):
    layer = hk.HubLayer(image_model)
    with pytest.raises(errors.InputSpecError) as info:
        layer(tf.constant(["not an image"]))
    assert image_model in str(info.value)
    assert "float32[None, 8, 8, 3]" in str(info.value)


def test_other_backend_raises_how_to_switch(mul_model, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(NotImplementedError, match="KERAS_BACKEND=tensorflow"):
        hk.HubLayer(mul_model)


# ----------------------------------------------------------- real models
def test_real_mobilenet_v3_frozen_and_trainable(real_models):
    path = str(real_models / "mobilenet_v3_small_075_224_feature_vector_5")
    layer = hk.HubLayer(path)
    out = layer(tf.fill((1, 224, 224, 3), 0.5)).numpy()
    assert out.shape == (1, 1024)
    np.testing.assert_allclose(out.sum(), 25.2045, atol=1e-2)
    np.testing.assert_allclose(
        out[0, :5],
        [0.34701, -0.13617, -0.31211, -0.03565, 0.46924],
        atol=1e-3,
    )
    layer.trainable = True
    assert len(layer.trainable_weights) == 140
    assert len(layer.non_trainable_weights) == 68
    np.testing.assert_allclose(float(layer.losses[0]), 0.2451, atol=1e-3)


def test_real_keras2_saved_model(real_models):
    path = str(real_models / "arm_openmv_gesture_mobilenet_025_keras")
    layer = hk.HubLayer(path)
    np.testing.assert_allclose(
        layer(tf.fill((1, 160, 120, 1), 0.5)).numpy()[0],
        [0.88328, 0.0523, 0.02605, 0.0, 0.03837],
        atol=1e-3,
    )
    layer.trainable = True
    assert len(layer.trainable_weights) == 83
    assert len(layer.non_trainable_weights) == 54
    assert layer.losses == []


def test_real_tf1_signature_only_model(real_models):
    path = str(real_models / "teachable_machine_mobilenet_v2_035_tf1")
    layer = hk.HubLayer(
        path, signature="serving_default", output_key="sequential_3"
    )
    np.testing.assert_allclose(
        layer(tf.fill((1, 224, 224, 3), 0.5)).numpy()[0],
        [0.07601, 0.39562, 0.33122, 0.19714],
        atol=1e-3,
    )
    trainable = hk.HubLayer(
        path,
        signature="serving_default",
        output_key="sequential_3",
        trainable=True,
    )
    with pytest.raises(errors.TrainabilityError):
        trainable(tf.fill((1, 224, 224, 3), 0.5))


def test_real_tf1_module_with_missing_custom_op(real_models):
    path = str(real_models / "tf_text_segmenter_hub_module")
    with pytest.raises(errors.HandleError, match="TokenizerFromLogits"):
        hk.HubLayer(path, signature_outputs_as_dict=True)
