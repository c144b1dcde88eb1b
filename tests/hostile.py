"""SavedModels that do things a model should not (for the safety gate)."""

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2


class _CanaryResource(tf.saved_model.experimental.TrackableResource):
    """A resource whose initializer writes a file: it runs at load time."""

    def __init__(self, canary):
        self._canary = canary
        super().__init__()

    def _create_resource(self):
        return tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64)

    def _initialize(self):
        tf.io.write_file(self._canary, "written at load time")


def save_load_time_writer(path, canary):
    module = tf.Module()
    module.resource = _CanaryResource(canary)
    module.v = tf.Variable(1.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def call(x):
        return x * module.v

    module.__call__ = call
    tf.saved_model.save(module, path)
    return path


def save_call_reads_file(path, secret):
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def call(x):
        content = tf.io.read_file(secret)
        return x + tf.cast(tf.strings.length(content), tf.float32)

    module.__call__ = call
    tf.saved_model.save(module, path)
    return path


def save_py_function(path):
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def call(x):
        return tf.py_function(lambda t: t * 2, [x], tf.float32)

    module.__call__ = call
    tf.saved_model.save(module, path)
    return path


class _ForeignTable(tf.saved_model.experimental.TrackableResource):
    """A lookup table filled from a file that is not one of its assets."""

    def __init__(self, filename):
        self._filename = filename
        super().__init__()

    def _create_resource(self):
        return tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64)

    def _initialize(self):
        tf.raw_ops.InitializeTableFromTextFileV2(
            table_handle=self.resource_handle,
            filename=tf.strings.join([self._filename, ""]),
            key_index=-2,
            value_index=-1,
        )


def save_foreign_table(path, filename):
    module = tf.Module()
    module.table = _ForeignTable(filename)
    tf.saved_model.save(module, path)
    return path


def rename_op(path, old, new):
    """Renames every `old` op in the proto to `new` (an unknown op)."""
    proto = saved_model_pb2.SavedModel()
    pb = f"{path}/saved_model.pb"
    with open(pb, "rb") as f:
        proto.ParseFromString(f.read())
    renamed = 0
    for meta_graph in proto.meta_graphs:
        for fn in meta_graph.graph_def.library.function:
            for node in fn.node_def:
                if node.op == old:
                    node.op = new
                    renamed += 1
    assert renamed, f"no {old} op found"
    with open(pb, "wb") as f:
        f.write(proto.SerializeToString())
    return path
