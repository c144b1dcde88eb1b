"""A `fit` for MultiWorkerMirroredStrategy.

Keras 3.15's `Model.fit` cannot run under `MultiWorkerMirroredStrategy`:
it mean-reduces scalar logs along axis 0 ("Invalid reduction dimension 0
for input with 0 dimensions", tensorflow/tensorflow#72388). This loop does
the same work with TensorFlow's own distribution primitives: the dataset is
distributed, each replica computes `model.compute_loss` (which Keras scales
for the number of replicas), the optimizer all-reduces gradients, and logs
are reduced across workers. Keras callbacks run as in `fit`.
"""

import keras
import tensorflow as tf

from keras_hubkit import errors


def is_multi_worker(strategy):
    """Whether `strategy` spans several workers (collective all-reduce)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(tasks) for tasks in spec.values()) > 1


def fit(
    model,
    dataset,
    *,
    initial_epoch,
    epochs,
    callbacks,
    validation_data=None,
    verbose=0,
):
    """Trains `model` on a batched `tf.data.Dataset` of `(x, y)`."""
    if not isinstance(dataset, tf.data.Dataset):
        raise errors.StrategyError(
            "Expected a batched tf.data.Dataset of (x, y) under "
            f"MultiWorkerMirroredStrategy. Received: {type(dataset)}. Wrap "
            "the data with tf.data.Dataset.from_tensor_slices(...).batch(n)."
        )
    strategy = model.distribute_strategy
    train_step = _step_function(model, strategy, train=True)
    val_step = _step_function(model, strategy, train=False)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    callback_list = keras.callbacks.CallbackList(
        callbacks,
        model=model,
        add_history=False,
        add_progbar=bool(verbose),
        verbose=verbose,
        epochs=epochs,
    )
    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        logs = {
            "loss": _run_epoch(
                train_step, strategy, dataset, callback_list, train=True
            )
        }
        if validation_data is not None:
            callback_list.on_test_begin()
            logs["val_loss"] = _run_epoch(
                val_step, strategy, validation_data, None, train=False
            )
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)


def _run_epoch(step, strategy, dataset, callback_list, train):
    total, count = 0.0, 0
    for batch_index, batch in enumerate(
        strategy.experimental_distribute_dataset(dataset)
    ):
        if callback_list is not None:
            callback_list.on_train_batch_begin(batch_index)
        loss = float(step(batch))
        total, count = total + loss, count + 1
        if callback_list is not None:
            callback_list.on_train_batch_end(batch_index, {"loss": loss})
            if callback_list.model.stop_training:
                break
    return total / max(count, 1)


def _step_function(model, strategy, train):
    replicas = strategy.num_replicas_in_sync

    def replica_step(x, y):
        if not train:
            pred = model(x, training=False)
            return model.compute_loss(x, y, pred, training=False) * replicas
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            # Scaled by 1 / replicas for the gradient all-reduce (a sum).
            loss = model.compute_loss(x, y, pred, training=True)
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        model.optimizer.apply(grads, variables)
        return loss * replicas

    @tf.function
    def step(batch):
        x, y = batch[0], batch[1]
        per_replica = strategy.run(replica_step, args=(x, y))
        return strategy.reduce("MEAN", per_replica, axis=None)

    return step
