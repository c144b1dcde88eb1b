"""Image models know their input: size, channels, pixel range, gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import errors

import models

MOBILENET = "mobilenet_v3_small_075_224_feature_vector_5"
KERAS2 = "arm_openmv_gesture_mobilenet_025_keras"
TF1 = "teachable_machine_mobilenet_v2_035_tf1"


@pytest.fixture(scope="module")
def any_size_model(tmp_path_factory):
    return models.save_image_feature_vector(
        str(tmp_path_factory.mktemp("any") / "m"), size=None
    )


def test_size_and_channels_from_the_signature(image_model):
    assert hk.get_expected_image_size(image_model) == (8, 8)
    assert hk.get_num_image_channels(image_model) == 3
    # The same answer from a loaded object and from a HubLayer.
    assert hk.get_expected_image_size(hk.load(image_model)) == (8, 8)
    assert hk.get_expected_image_size(hk.HubLayer(image_model)) == (8, 8)


def test_dynamic_size_falls_back_only_when_asked(any_size_model):
    with pytest.raises(errors.InputSpecError, match=r"any size.*default="):
        hk.get_expected_image_size(any_size_model)
    assert hk.get_expected_image_size(any_size_model, default=(32, 48)) == (
        32,
        48,
    )
    assert hk.get_num_image_channels(any_size_model) == 3


def test_not_an_image_model(text_model, signature_model):
    with pytest.raises(errors.InputSpecError, match=r"string\[None\]"):
        hk.get_expected_image_size(text_model)
    with pytest.raises(errors.InputSpecError, match="float32"):
        hk.get_expected_image_size(signature_model)
    with pytest.raises(errors.SignatureError, match="norm"):
        hk.get_expected_image_size(signature_model, signature="nope")


def test_real_models(real_models):
    mobilenet = str(real_models / MOBILENET)
    assert hk.get_expected_image_size(mobilenet) == (224, 224)
    assert hk.get_num_image_channels(mobilenet) == 3
    # Signature-only (no __call__): read from serving_default.
    assert hk.get_expected_image_size(str(real_models / TF1)) == (224, 224)


# ------------------------------------------------------ integer pixels
def test_integer_images_are_refused(image_model):
    layer = hk.HubLayer(image_model)
    pixels = np.full((1, 8, 8, 3), 200, "uint8")
    with pytest.raises(errors.InputSpecError, match=r"\[0, 1\].*uint8"):
        layer(pixels)
    with pytest.raises(errors.InputSpecError, match="Scale them"):
        layer(tf.constant(pixels, tf.int32))
    with pytest.raises(errors.InputSpecError, match="Scale them"):
        keras.Sequential([keras.Input((8, 8, 3), dtype="uint8"), layer])
    scaled = layer(pixels.astype("float32") / 255)
    assert scaled.shape == (1, 6)


def test_integers_still_feed_non_image_float_models(mul_model):
    # hub.KerasLayer accepted `layer([1, 2])`; only images are checked.
    layer = hk.HubLayer(mul_model)
    np.testing.assert_allclose(layer(np.array([1, 2])), [2.0, 4.0])


# ----------------------------------------------------- image classifier
def test_image_classifier_takes_the_model_size(image_model, any_size_model):
    assert hk.image_classifier(image_model, 2).input.shape == (None, 8, 8, 3)
    with pytest.raises(errors.InputSpecError, match=r"\(8, 8\).*\(16, 16\)"):
        hk.image_classifier(image_model, 2, image_size=(16, 16))
    model = hk.image_classifier(any_size_model, 2, image_size=(16, 12))
    assert model.input.shape == (None, 16, 12, 3)
    assert hk.image_classifier(any_size_model, 2).input.shape[1:3] == (
        224,
        224,
    )


# ----------------------------------------------- ops with no gradient
class AugmentingModel(tf.train.Checkpoint):
    """Like a Keras 2 export with RandomContrast: in training mode the
    inputs go through `AdjustContrastv2`, which has no gradient."""

    def __init__(self, stop_gradient=False):
        super().__init__()
        self.stop_gradient = stop_gradient
        self.kernel = tf.Variable(tf.ones([3, 2]), name="dense/kernel")
        self.variables = [self.kernel]
        self.trainable_variables = [self.kernel]
        self.regularization_losses = []

    @tf.function
    def __call__(self, images, training=False):
        if training:
            images = tf.image.adjust_contrast(images, 1.5)
            if self.stop_gradient:  # the op is off the differentiated path
                images = tf.stop_gradient(images)
        return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.kernel)


def _save_augmenting(path, stop_gradient=False):
    model = AugmentingModel(stop_gradient)
    spec = tf.TensorSpec([None, 4, 4, 3], tf.float32)
    for training in (True, False):
        model.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(model, path)
    return path


@pytest.fixture(scope="module")
def augmenting_model(tmp_path_factory):
    return _save_augmenting(str(tmp_path_factory.mktemp("augmenting") / "m"))


def _fit(layer):
    model = keras.Sequential([keras.Input((4, 4, 3)), layer])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).random((4, 4, 4, 3), "float32")
    return model.fit(x, np.zeros((4, 2), "float32"), verbose=0)


def test_no_gradient_suggests_inference_only(augmenting_model):
    with pytest.raises(
        errors.TrainabilityError, match=r"AdjustContrastv2.*inference_only"
    ):
        _fit(hk.HubLayer(augmenting_model, trainable=True))
    layer = hk.HubLayer(augmenting_model, trainable=True, inference_only=True)
    before = layer.trainable_weights[0].numpy().copy()
    _fit(layer)
    assert not np.allclose(layer.trainable_weights[0].numpy(), before)


def test_ops_off_the_gradient_path_are_not_flagged(tmp_path, image_model):
    path = _save_augmenting(str(tmp_path / "m"), stop_gradient=True)
    _fit(hk.HubLayer(path, trainable=True))  # the probe confirms: no error
    layer = hk.HubLayer(image_model, trainable=True)
    model = keras.Sequential([keras.Input((8, 8, 3)), layer])
    model.compile("sgd", "mse")
    model.fit(np.zeros((2, 8, 8, 3)), np.zeros((2, 6)), verbose=0)


@pytest.mark.slow
def test_real_keras2_export_fine_tunes_only_in_inference_mode(real_models):
    layer = hk.HubLayer(str(real_models / KERAS2), trainable=True)
    assert hk.get_expected_image_size(layer) == (160, 120)
    assert hk.get_num_image_channels(layer) == 1
    model = keras.Sequential([keras.Input((160, 120, 1)), layer])
    model.compile("sgd", "mse")
    x = np.full((2, 160, 120, 1), 0.5, "float32")
    with pytest.raises(errors.TrainabilityError, match="inference_only=True"):
        model.train_on_batch(x, np.zeros((2, 5), "float32"))
