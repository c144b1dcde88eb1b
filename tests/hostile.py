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


def save_gradient_reads_file(path, secret):
    """A custom gradient (saved as a registered gradient function) that
    reads a file: it runs when a caller differentiates the model."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def call(x):
        @tf.custom_gradient
        def scaled(x):
            def grad(dy):
                size = tf.strings.length(tf.io.read_file(secret))
                return dy * tf.cast(size, tf.float32)

            return x * 3.0, grad

        return scaled(x)

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


# ---------------------------------------------------------------------------
# Issue 13: one model per class of bypass of the first (denylist) design.
# Each builder returns the SavedModel folder; what the model does to its
# canary is proven with plain TensorFlow in tests/test_hostile.py.


def _save_call(path, call, spec=None):
    module = tf.Module()
    spec = spec or tf.TensorSpec([None], tf.float32)
    module.__call__ = tf.function(call, input_signature=[spec])
    tf.saved_model.save(module, path)
    return path


def save_queue_reader(path, secret):
    """Reads `secret` with a queue-based reader: no op names the file."""

    def call(x):
        queue = tf.raw_ops.FIFOQueueV2(component_types=[tf.string], capacity=1)
        tf.raw_ops.QueueEnqueueV2(handle=queue, components=[secret])
        reader = tf.raw_ops.WholeFileReaderV2()
        _, value = tf.raw_ops.ReaderReadV2(
            reader_handle=reader, queue_handle=queue
        )
        return x + tf.cast(tf.strings.length(value), tf.float32)

    return _save_call(path, call)


def save_dataset_cache_writer(path, prefix):
    """`Dataset.cache(prefix)` writes `prefix.index` and data files."""

    def call(x):
        ds = tf.data.Dataset.from_tensors(x).cache(prefix)
        return ds.reduce(tf.zeros_like(x), lambda a, b: a + b)

    return _save_call(path, call)


def save_dataset_lister(path, folder):
    """`Dataset.list_files` lists a folder."""

    def call(x):
        ds = tf.data.Dataset.list_files(folder + "/*", shuffle=False)
        count = ds.reduce(tf.constant(0.0), lambda a, _: a + 1.0)
        return x + count

    return _save_call(path, call)


def save_dataset_map_reader(path, secret):
    """The file is read inside a dataset function (a `map`)."""

    def call(x):
        ds = tf.data.Dataset.from_tensors(secret).map(tf.io.read_file)
        text = ds.reduce(tf.constant(""), lambda a, b: a + b)
        return x + tf.cast(tf.strings.length(text), tf.float32)

    return _save_call(path, call)


def save_attr_descriptor(path, descriptor):
    """`decode_proto` opens the descriptor file named in an attr."""

    def call(x):
        _, values = tf.io.decode_proto(
            tf.fill(tf.shape(x), ""),  # empty messages: decode fine
            message_type="hubkit.Evil",
            field_names=["a"],
            output_types=[tf.int32],
            descriptor_source=descriptor,
        )
        return x + tf.cast(tf.size(values[0]), tf.float32)

    return _save_call(path, call)


def serialized_dataset_graph(dataset):
    """A dataset's graph as bytes (what `DatasetFromGraph` rebuilds)."""
    graph = tf.raw_ops.DatasetToGraphV2(input_dataset=dataset._variant_tensor)
    return graph.numpy()


def save_graph_as_constant(path, graph_bytes):
    """Rebuilds a dataset from a GraphDef carried in a string constant."""

    def call(x):
        graph = tf.constant(graph_bytes)
        variant = tf.raw_ops.DatasetFromGraph(graph_def=graph)
        ds = tf.data.experimental.from_variant(
            variant, tf.TensorSpec([], tf.string)
        )
        text = ds.reduce(tf.constant(""), lambda a, b: a + b)
        return x + tf.cast(tf.strings.length(text), tf.float32)

    return _save_call(path, call)


def save_graph_in_variable(path, graph_bytes):
    """Rebuilds a dataset from a GraphDef kept in a variable (checkpoint)."""
    module = tf.Module()
    module.graph = tf.Variable(graph_bytes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def call(x):
        variant = tf.raw_ops.DatasetFromGraph(graph_def=module.graph)
        ds = tf.data.experimental.from_variant(
            variant, tf.TensorSpec([], tf.string)
        )
        text = ds.reduce(tf.constant(""), lambda a, b: a + b)
        return x + tf.cast(tf.strings.length(text), tf.float32)

    module.__call__ = call
    tf.saved_model.save(module, path)
    return path


def save_graph_from_input(path):
    """Rebuilds a dataset from a GraphDef the caller passes in."""

    def call(graph):
        variant = tf.raw_ops.DatasetFromGraph(graph_def=graph)
        ds = tf.data.experimental.from_variant(
            variant, tf.TensorSpec([], tf.string)
        )
        return ds.reduce(tf.constant(""), lambda a, b: a + b)

    return _save_call(path, call, tf.TensorSpec([], tf.string))


def save_named_like_saver(path, prefix):
    """A function *named* like the saver's writes a checkpoint anywhere."""

    def _traced_save(x):
        save = tf.raw_ops.SaveV2(
            prefix=prefix,
            tensor_names=["x"],
            shape_and_slices=[""],
            tensors=[x],
        )
        with tf.control_dependencies([save]):
            return tf.identity(x)

    return _save_call(path, tf.function(_traced_save))


class _AssetTable(tf.Module):
    """A vocabulary table filled from an asset, as TF Hub text models do."""

    def __init__(self, vocab_file):
        super().__init__()
        self.vocab = tf.saved_model.Asset(vocab_file)
        initializer = tf.lookup.TextFileInitializer(
            self.vocab,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        self.table = tf.lookup.StaticHashTable(initializer, default_value=-1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, words):
        return self.table.lookup(words)


def save_asset_table(path, vocab_lines=("hello", "world")):
    folder = f"{path}.src"
    tf.io.gfile.makedirs(folder)
    vocab = f"{folder}/vocab.txt"
    with open(vocab, "w") as f:
        f.write("\n".join(vocab_lines) + "\n")
    tf.saved_model.save(_AssetTable(vocab), path)
    return path


def edit_asset_filename(path, filename):
    """Points every asset of the MetaGraph at `filename` (edited proto)."""
    proto = _read(path)
    for meta_graph in proto.meta_graphs:
        for asset in meta_graph.asset_file_def:
            asset.filename = filename
    _write(path, proto)
    return path


class _DatasetTable(tf.saved_model.experimental.TrackableResource):
    """Fills a table from a file name that travels through a dataset map."""

    def __init__(self, vocab_file, secret):
        self.vocab = tf.saved_model.Asset(vocab_file)
        self._secret = secret
        super().__init__()

    def _create_resource(self):
        return tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64)

    def _initialize(self):
        handle = self.resource_handle

        def init(asset, name):
            fill = tf.raw_ops.InitializeTableFromTextFileV2(
                table_handle=handle, filename=name, key_index=-2, value_index=-1
            )
            with tf.control_dependencies([fill]):
                return tf.identity(asset)

        ds = tf.data.Dataset.from_tensors((self.vocab.asset_path, self._secret))
        return ds.map(init).reduce(tf.constant(""), lambda a, b: b)


def save_dataset_table(path, secret):
    folder = f"{path}.src"
    tf.io.gfile.makedirs(folder)
    vocab = f"{folder}/vocab.txt"
    with open(vocab, "w") as f:
        f.write("hello\n")
    module = tf.Module()
    module.table = _DatasetTable(vocab, secret)
    tf.saved_model.save(module, path)
    return path


def add_shadowing_meta_graph(path):
    """Appends a clean copy of the MetaGraph (tags `train`) whose functions
    have the same names, with `ReadFile` replaced by `Identity`."""
    proto = _read(path)
    clean = proto.meta_graphs.add()
    clean.CopyFrom(proto.meta_graphs[0])
    del clean.meta_info_def.tags[:]
    clean.meta_info_def.tags.append("train")
    for fn in clean.graph_def.library.function:
        for node in fn.node_def:
            if node.op == "ReadFile":
                node.op = "Identity"
                node.attr["T"].type = tf.string.as_datatype_enum
    _write(path, proto)
    return path


def swap_op_keeping_size(path, old, new):
    """Renames op `old` to `new` (same length): same file size, new bytes."""
    assert len(old) == len(new)
    size = len(_raw(path))
    proto = _read(path)
    for meta_graph in proto.meta_graphs:
        for fn in meta_graph.graph_def.library.function:
            for node in fn.node_def:
                if node.op == old:
                    node.op = new
    _write(path, proto)
    assert len(_raw(path)) == size
    return path


def _raw(path):
    with open(f"{path}/saved_model.pb", "rb") as f:
        return f.read()


def _read(path):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(_raw(path))
    return proto


def _write(path, proto):
    with open(f"{path}/saved_model.pb", "wb") as f:
        f.write(proto.SerializeToString())


def unregister_saver(path):
    """Clears saver_def: the saver functions are no longer registered."""
    proto = _read(path)
    for meta_graph in proto.meta_graphs:
        meta_graph.saver_def.Clear()
    _write(path, proto)
    return path


def redirect_saver_suffix(path, suffix):
    """Replaces the saver's '_temp/part' suffix constant with `suffix`."""
    proto = _read(path)
    edited = 0
    for meta_graph in proto.meta_graphs:
        for fn in meta_graph.graph_def.library.function:
            for node in fn.node_def:
                values = node.attr["value"].tensor.string_val
                if node.op == "Const" and list(values) == [b"_temp/part"]:
                    values[0] = suffix.encode()
                    edited += 1
    assert edited, "no saver suffix found"
    _write(path, proto)
    return path


def save_custom_op_model(path, library):
    """A model calling the custom op `HubkitTestDouble` from `library`."""
    ops = tf.load_op_library(library)
    module = tf.Module()
    module.__call__ = tf.function(
        lambda x: ops.hubkit_test_double(x),
        input_signature=[tf.TensorSpec([None], tf.float32)],
    )
    tf.saved_model.save(module, path)
    return path


def add_op_called_as_function(path, op):
    """Adds a node to `__call__` that runs the op `op` through its `f` attr
    (a function name TensorFlow resolves to a primitive op)."""
    proto = _read(path)
    (meta_graph,) = proto.meta_graphs
    fn = next(
        f
        for f in meta_graph.graph_def.library.function
        if "__call__" in f.signature.name
    )
    node = fn.node_def.add(name="innocent", op="StatefulPartitionedCall")
    node.input.append(fn.signature.input_arg[0].name)
    node.attr["f"].func.name = op
    _write(path, proto)
    return path


def add_unused_asset(path, filename):
    """Adds an Asset that no op reads, pointing at `filename`: re-exporting
    the loaded model copies that file into the export."""
    proto = _read(path)
    (meta_graph,) = proto.meta_graphs
    asset = meta_graph.asset_file_def.add(filename=filename)
    asset.tensor_info.name = "unused_asset:0"
    node = meta_graph.object_graph_def.nodes.add()
    node.asset.asset_file_def_index = len(meta_graph.asset_file_def) - 1
    meta_graph.object_graph_def.nodes[0].children.add(
        node_id=len(meta_graph.object_graph_def.nodes) - 1, local_name="notes"
    )
    _write(path, proto)
    return path


def add_tf1_collection_asset(path, filename):
    """Adds an asset the old TF1 way (collection `saved_model_assets`)."""
    from tensorflow.core.protobuf import meta_graph_pb2

    proto = _read(path)
    (meta_graph,) = proto.meta_graphs
    asset = meta_graph_pb2.AssetFileDef(filename=filename)
    asset.tensor_info.name = "x:0"
    collection = meta_graph.collection_def["saved_model_assets"]
    collection.any_list.value.add().Pack(asset)
    _write(path, proto)
    return path


def add_variant_constant(path, type_name):
    """Adds a constant of DT_VARIANT holding `type_name` to `__call__`."""
    proto = _read(path)
    (meta_graph,) = proto.meta_graphs
    fn = next(
        f
        for f in meta_graph.graph_def.library.function
        if "__call__" in f.signature.name
    )
    node = fn.node_def.add(name="payload", op="Const")
    node.attr["dtype"].type = tf.variant.as_datatype_enum
    tensor = node.attr["value"].tensor
    tensor.dtype = tf.variant.as_datatype_enum
    tensor.variant_val.add(type_name=type_name)
    _write(path, proto)
    return path


def save_gradient_called_by_saver(path, canary, op_type="CustomGradient-2"):
    """A custom gradient G that writes a checkpoint at `prefix + canary`,
    also called by the saver's save function with its checkpoint prefix (so
    G looks like part of the saver), and linked to its forward op only
    through the name TensorFlow's loader gives G at run time: G's saved op
    type is renamed, and the forward op's `_gradient_op_type` is `op_type`
    (in a fresh process, the loader's name for the first saved gradient),
    or, with `op_type=None`, no op of this model names it (one of another
    model loaded later can). Differentiating the model runs G, which writes
    the files."""
    module = tf.Module()
    module.v = tf.Variable(1.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def call(x):
        @tf.custom_gradient
        def double(prefix, x):
            def grad(d_prefix, dy):
                save = tf.raw_ops.SaveV2(
                    prefix=tf.strings.join([d_prefix, canary]),
                    tensor_names=["dy"],
                    shape_and_slices=[""],
                    tensors=[dy],
                )
                with tf.control_dependencies([save]):
                    return None, tf.identity(dy)

            return (tf.identity(prefix), x * 2.0), grad

        prefix = tf.compat.v1.placeholder_with_default("p", shape=None)
        return double(prefix, x)[1] * module.v

    module.__call__ = call
    tf.saved_model.save(module, path)
    proto = _read(path)
    library = proto.meta_graphs[0].graph_def.library
    (registered,) = library.registered_gradients
    grad = next(
        f
        for f in library.function
        if f.signature.name == registered.gradient_func
    )
    save = next(
        f for f in library.function if "_traced_save" in f.signature.name
    )
    zero = save.node_def.add(name="zero", op="Const")
    zero.attr["dtype"].type = tf.float32.as_datatype_enum
    zero.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(0.0))
    also = save.node_def.add(name="also_grad", op="StatefulPartitionedCall")
    also.attr["f"].func.name = grad.signature.name
    for arg in grad.signature.input_arg:
        is_string = arg.type == tf.string.as_datatype_enum
        also.input.append(
            save.signature.input_arg[0].name if is_string else "zero:output:0"
        )
        also.attr["Tin"].list.type.append(arg.type)
    also.attr["Tout"].list.type.extend(
        a.type for a in grad.signature.output_arg
    )
    saved_type = registered.registered_op_type.encode()
    registered.registered_op_type = "renamed"
    for fn in library.function:
        for node in fn.node_def:
            if _attr_bytes(node, "_gradient_op_type") != saved_type:
                continue
            if op_type is None:  # for another model's op to name
                del node.attr["_gradient_op_type"]
            else:
                node.attr["_gradient_op_type"].s = op_type.encode()
    _write(path, proto)
    return path


def _attr_bytes(node, name):
    return node.attr[name].s if name in node.attr else b""
