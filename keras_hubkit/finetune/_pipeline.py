"""Array inputs as a prefetched `tf.data` pipeline for `model.fit`.

Keras turns arrays into a dataset of its own on every `fit` call, built to
slice any array type and to be sharded, with tf.data's autotuner on. For
the in-memory arrays that fine-tuning takes, a plain pipeline is enough:
the examples shuffled (in a buffer when they are small, by index when they
are large), batched, prefetched, and the autotuner off (see `steady`, and
the training loops on the benchmarks page).
"""

import keras
import numpy as np
import tensorflow as tf


def as_dataset(x, y=None, sample_weight=None, *, batch_size=None, shuffle=True):
    """`(x, y[, sample_weight])` as a batched, prefetched `tf.data.Dataset`.

    Args:
        x: a NumPy array or tensor, or a list/tuple/dict of them.
        y: targets, likewise (or None).
        sample_weight: per-example weights, or None.
        batch_size: examples per batch (default 32, as `model.fit`).
        shuffle: reshuffle the examples every epoch, as `model.fit` does.

    Returns:
        The dataset, or None when `x` is not in-memory arrays (a dataset,
        a generator, a `PyDataset`): those go to `model.fit` unchanged.
    """
    if not _is_arrays(x) or (y is not None and not _is_arrays(y)):
        return None
    parts = tuple(p for p in (x, y, sample_weight) if p is not None)
    # `tf.data` would stack a list of arrays into one tensor; Keras's own
    # adapter reads lists as tuples too (several inputs or outputs).
    tensors = tf.nest.map_structure(
        tf.convert_to_tensor, keras.tree.lists_to_tuples(parts)
    )
    sizes = {int(t.shape[0]) for t in tf.nest.flatten(tensors)}
    if len(sizes) != 1:
        # Keras's own adapter explains mismatched lengths best.
        return None
    (n,) = sizes
    batch_size = batch_size or 32
    if _nbytes(tensors) <= SHUFFLE_BUFFER_BYTES:
        batches = _from_buffer(tensors, n, batch_size, shuffle)
    else:
        batches = _by_gather(tensors, n, batch_size, shuffle)
    return steady(batches.prefetch(tf.data.AUTOTUNE))


# Up to this size, examples are shuffled in a buffer that holds a copy of
# all of them (a hand-written loop's pipeline); above it, one `gather` per
# batch picks them from the arrays, without the copy. The gather costs
# more per batch on 2 CPU cores, which only small examples' short steps
# notice (`benchmarks/bench_loop_parts.py` measures it).
SHUFFLE_BUFFER_BYTES = 64 << 20


def _from_buffer(tensors, n, batch_size, shuffle):
    examples = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        examples = examples.shuffle(n, reshuffle_each_iteration=True)
    return examples.batch(batch_size)


def _by_gather(tensors, n, batch_size, shuffle):
    indices = tf.data.Dataset.range(n)
    if shuffle:
        indices = indices.shuffle(n, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size).map(
        lambda i: tf.nest.map_structure(lambda t: tf.gather(t, i), tensors),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    # Graph rewrites would serialize the captured arrays on every epoch.
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return batches.with_options(options)


def _nbytes(tensors):
    total = 0
    for t in tf.nest.flatten(tensors):
        if t.dtype == tf.string:
            total += int(tf.reduce_sum(tf.strings.length(t))) + 8 * int(
                tf.size(t)
            )
        else:
            total += int(tf.size(t)) * t.dtype.size
    return total


def steady(dataset):
    """`dataset` with tf.data's autotuner off.

    When `fit` reads the iterator inside its compiled step (as Keras does),
    epochs with the autotuner on now and then took twice the wall time for
    the same CPU time on 2 cores, as if the step's kernels had one thread.
    It comes and goes (`benchmarks/bench_autotune.py` hunts for it;
    `benchmarks/bench_layer.py` times `fit` on and off), and turning it off
    costs nothing measurable. Parallel maps still use every core (their
    parallelism then defaults to the number of cores), and prefetch
    buffers still grow on demand.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _is_arrays(value):
    flat = tf.nest.flatten(value)
    return bool(flat) and all(
        isinstance(v, (np.ndarray, tf.Tensor)) and v.ndim > 0 for v in flat
    )
