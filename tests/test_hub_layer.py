"""HubLayer: the hub.KerasLayer contract on Keras 3."""

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


def _images(n=8, size=8, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), "float32")


# ------------------------------------------------------- the TF Hub guide
def test_guide_mymulmodel_example(mul_model):
    layer = hk.HubLayer(mul_model)
    np.testing.assert_allclose(layer([10.0, 20.0]), [20.0, 40.0])
    assert layer.trainable_weights == []
    assert layer.losses == []
    layer.trainable = True
    assert [float(w.numpy()) for w in layer.trainable_weights] == [2.0]
    np.testing.assert_allclose(
        [float(x) for x in layer.losses], [0.004], rtol=1e-6
    )
    layer.trainable = False
    assert layer.losses == []


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
    assert model.losses == []
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
    layer = hk.HubLayer(signature_model, signature="serving_default")
    with pytest.raises(errors.SignatureError, match="output_key"):
        layer(np.ones((1, 2), "float32"))


def test_signature_layer_cannot_be_fine_tuned(signature_model):
    with pytest.raises(errors.TrainabilityError, match="signature"):
        hk.HubLayer(signature_model, signature="norm", trainable=True)


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


def test_keras_file_round_trip_keeps_fine_tuned_weights(image_model, tmp_path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            hk.HubLayer(image_model, trainable=True),
            keras.layers.Dense(3),
        ]
    )
    model.compile("adam", SCE)
    model.fit(_images(), np.arange(8) % 3, epochs=2, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    with pytest.raises(errors.UnsafeDeserializationError, match="safe_mode"):
        keras.models.load_model(path)
    reloaded = keras.models.load_model(path, safe_mode=False)
    x = _images(seed=3)
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        reloaded.predict(x, verbose=0),
        rtol=1e-5,
    )
    assert reloaded.layers[0].trainable


# ------------------------------------------------------------ TF1 format
def test_tf1_hub_module_for_inference(tf1_model):
    layer = hk.HubLayer(tf1_model)
    np.testing.assert_allclose(layer(tf.constant([1.0, 2.0])), [2.5, 3.0])
    with pytest.raises(errors.TrainabilityError, match="TF1 Hub module"):
        hk.HubLayer(tf1_model, trainable=True)
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
    with pytest.raises(errors.TrainabilityError):
        hk.HubLayer(
            path,
            signature="serving_default",
            output_key="sequential_3",
            trainable=True,
        )


def test_real_tf1_module_with_missing_custom_op(real_models):
    path = str(real_models / "tf_text_segmenter_hub_module")
    with pytest.raises(errors.HandleError, match="TokenizerFromLogits"):
        hk.HubLayer(path, signature_outputs_as_dict=True)
