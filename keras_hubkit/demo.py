"""The offline demo: the TF Hub guide's workflow, end to end, on Keras 3."""

import os

import keras
import numpy as np
import tensorflow as tf

import keras_hubkit as hk


class _Scale(tf.train.Checkpoint):
    """The TF Hub guide's reusable SavedModel: `x * v`, regularized."""

    def __init__(self):
        super().__init__()
        self.v = tf.Variable(2.0)
        self.variables = [self.v]
        self.trainable_variables = [self.v]
        self.regularization_losses = [
            tf.function(input_signature=[])(lambda: 0.001 * self.v**2)
        ]

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
    def __call__(self, inputs):
        return inputs * self.v


def run(output_dir, quick=False):
    """Publishes, reuses, fine-tunes and re-exports a SavedModel."""
    os.makedirs(output_dir, exist_ok=True)
    published = os.path.join(output_dir, "published")
    tf.saved_model.save(_Scale(), published)
    print(f"1. Published a reusable SavedModel to {published}")

    obj = hk.load(published)
    print(f"2. hk.load: obj([10., 20.]) = {obj([10.0, 20.0]).numpy()}")

    layer = hk.HubLayer(obj, trainable=True)
    model = keras.Sequential([keras.Input((1,)), layer])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    x = np.linspace(-1, 1, 32).astype("float32")[:, None]
    model.fit(x, 3 * x, epochs=5 if quick else 40, verbose=0)
    print(
        f"3. Fine-tuned with HubLayer: v = {float(obj.v.numpy()):.3f} "
        f"(target 3), regularization loss {float(model.losses[0]):.4f}"
    )

    finetuned = os.path.join(output_dir, "finetuned")
    tf.saved_model.save(obj, finetuned)
    again = hk.load(finetuned)
    print(f"4. Re-exported to {finetuned}: reloaded v = {float(again.v):.3f}")
