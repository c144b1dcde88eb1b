"""`hk.scan`: list every op a SavedModel can run, without running it.

"TensorFlow models are programs": a SavedModel can read and write files,
open connections or call Python, and a resource initializer does so inside
`tf.saved_model.load()` itself. The scan parses `saved_model.pb` as data
and reports every op, in the graph and in each library function, with where
it runs (a load-time initializer, `__call__`, a signature, the saver).
`hk.load` refuses a model with risky ops unless the caller opts in.

The scan is a gate, not a sandbox: file names can be computed at run time,
so it cannot prove a model safe. Run untrusted models in a sandbox.
"""

import collections
import dataclasses
import hashlib
import logging
import os

from keras_hubkit import constants
from keras_hubkit import errors

logger = logging.getLogger(__name__)

RISKY_OPS = {
    # Files.
    "ReadFile": "reads a file",
    "WriteFile": "writes a file",
    "MatchingFiles": "lists files",
    "ImmutableConst": "maps a file into memory",
    "Save": "writes a checkpoint file",
    "SaveSlices": "writes a checkpoint file",
    "Restore": "reads a checkpoint file",
    "RestoreSlice": "reads a checkpoint file",
    "SaveV2": "writes a checkpoint file (outside the saver)",
    "RestoreV2": "reads a checkpoint file (outside the saver)",
    "MergeV2Checkpoints": "moves checkpoint files (outside the saver)",
    # Summaries and debug sinks.
    "CreateSummaryFileWriter": "opens a summary file",
    "CreateSummaryDbWriter": "opens a summary database",
    "SummaryWriter": "opens a summary writer",
    "WriteSummary": "writes a summary",
    "WriteScalarSummary": "writes a summary",
    "WriteHistogramSummary": "writes a summary",
    "WriteImageSummary": "writes a summary",
    "WriteAudioSummary": "writes a summary",
    "WriteGraphSummary": "writes a summary",
    "WriteRawProtoSummary": "writes a summary",
    "ImportEvent": "writes a summary",
    "DebugIdentity": "sends tensors to a debug URL (file:// or grpc://)",
    "DebugIdentityV2": "sends tensors to a debug URL",
    "DebugIdentityV3": "sends tensors to a debug URL",
    "DebugNanCount": "sends tensors to a debug URL",
    "DebugNumericSummary": "sends tensors to a debug URL",
    "DebugNumericSummaryV2": "sends tensors to a debug URL",
    # Datasets backed by files or the network.
    "TFRecordDataset": "reads files",
    "TFRecordDatasetV2": "reads files",
    "TextLineDataset": "reads files",
    "FixedLengthRecordDataset": "reads files",
    "FixedLengthRecordDatasetV2": "reads files",
    "CSVDataset": "reads files",
    "CSVDatasetV2": "reads files",
    "ExperimentalCSVDataset": "reads files",
    "SqlDataset": "reads a database",
    "ExperimentalSqlDataset": "reads a database",
    "LMDBDataset": "reads files",
    "ExperimentalLMDBDataset": "reads files",
    "SaveDataset": "writes files",
    "SaveDatasetV2": "writes files",
    "LoadDataset": "reads files",
    "DatasetToTFRecord": "writes files",
    "ExperimentalDatasetToTFRecord": "writes files",
    "SnapshotDataset": "writes files",
    "SnapshotDatasetV2": "writes files",
    "DistributedSave": "writes files",
    "DataServiceDataset": "connects to a data service",
    "DataServiceDatasetV2": "connects to a data service",
    "DataServiceDatasetV3": "connects to a data service",
    "DataServiceDatasetV4": "connects to a data service",
    "RegisterDataset": "connects to a data service",
    "RegisterDatasetV2": "connects to a data service",
    # Network.
    "RpcServer": "opens a network server",
    "RpcServerStart": "opens a network server",
    "RpcServerRegister": "opens a network server",
    "RpcClient": "opens a network connection",
    "RpcCall": "opens a network connection",
    # Python.
    "PyFunc": "calls Python code",
    "PyFuncStateless": "calls Python code",
    "EagerPyFunc": "calls Python code",
}

# Legitimate when the file is one of the model's own assets.
ASSET_FILE_OPS = {
    "InitializeTableFromTextFile": 1,
    "InitializeTableFromTextFileV2": 1,
    "LoadAndRemapMatrix": 0,
    "GenerateVocabRemapping": 0,
}

_SAVER_ONLY = {"SaveV2", "RestoreV2", "MergeV2Checkpoints", "Save", "Restore"}
_LOAD_TIME = ("_initialize", "_create_resource", "__saved_model_init_op")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One risky op: which, what it does, and where it would run."""

    op: str
    reason: str
    function: str
    node: str
    entry_points: tuple

    @property
    def runs_at_load(self):
        """Whether loading alone runs it (a resource initializer)."""
        return any(
            p.endswith(_LOAD_TIME) or p.startswith("load-time")
            for p in self.entry_points
        )

    def __str__(self):
        where = ", ".join(self.entry_points) or "not reachable from an API"
        place = "graph" if self.function == "<graph>" else self.function
        load = " (RUNS AT LOAD TIME)" if self.runs_at_load else ""
        return (
            f"{self.op} ({self.reason}) in {place}, node {self.node!r}; "
            f"reached from: {where}{load}"
        )


@dataclasses.dataclass(frozen=True)
class ScanReport:
    """What `hk.scan` found in a SavedModel.

    Attributes:
        path: the SavedModel folder.
        fingerprint: SHA-256 of `saved_model.pb`, to pin a reviewed model.
        op_counts: every op type and how often it occurs.
        findings: the risky ops, with where they run.
        unregistered_ops: op types this TensorFlow does not know.
        functions: library functions by name, with the entry points
            (object paths, signatures, load-time initializers) reaching them.
    """

    path: str
    fingerprint: str
    op_counts: dict
    findings: tuple
    unregistered_ops: tuple
    functions: dict

    @property
    def safe(self):
        """No risky op and no unregistered op."""
        return not self.findings and not self.unregistered_ops

    def summary(self):
        """A human-readable report."""
        lines = [
            f"SavedModel {self.path}",
            f"  fingerprint (sha256 of saved_model.pb): {self.fingerprint}",
            f"  {sum(self.op_counts.values())} ops of "
            f"{len(self.op_counts)} types in the graph and "
            f"{len(self.functions)} functions",
        ]
        if self.unregistered_ops:
            lines.append(
                "  ops not registered in this TensorFlow: "
                + ", ".join(self.unregistered_ops)
            )
        if self.findings:
            lines.append(f"  {len(self.findings)} risky ops:")
            lines += [f"    - {f}" for f in self.findings]
        else:
            lines.append("  no risky ops (files, network, Python, debug)")
        return "\n".join(lines)


def scan(handle) -> ScanReport:
    """Scans a SavedModel's ops without loading it.

    Args:
        handle: a path or URL (resolved with `hk.resolve`).

    Returns:
        A `ScanReport`.

    Example:

    ```python
    report = hk.scan("/models/my_model")
    print(report.summary())
    ```
    """
    from keras_hubkit.resolver import resolve

    return scan_path(resolve(handle))


_REPORTS = {}  # (path, size, mtime) -> ScanReport, for this process


def scan_path(path: str) -> ScanReport:
    """`scan` for a local SavedModel folder.

    A report is kept for the life of the process and reused while
    `saved_model.pb` is unchanged, so search trials that reload a model
    do not scan it again.
    """
    key = _file_key(path)
    if key is not None and key in _REPORTS:
        return _REPORTS[key]
    report = _scan_uncached(path)
    if key is not None:
        _REPORTS[key] = report
    return report


def _file_key(path):
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        try:
            stat = os.stat(os.path.join(path, name))
        except OSError:
            continue
        return (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    return None


def _scan_uncached(path):
    proto, raw = _read_proto(path)
    graph = _Graph(proto, path)
    return ScanReport(
        path=path,
        fingerprint=hashlib.sha256(raw).hexdigest(),
        op_counts=dict(graph.op_counts),
        findings=tuple(graph.findings()),
        unregistered_ops=tuple(graph.unregistered()),
        functions={n: tuple(sorted(e)) for n, e in graph.entries.items()},
    )


def check(report, handle, allow_ops=None, trusted_fingerprints=None):
    """Raises unless `report` is clean or the caller opted in.

    Args:
        report: a `ScanReport`.
        handle: the handle, for messages.
        allow_ops: op types the caller accepts for this call.
        trusted_fingerprints: fingerprints the caller trusts entirely;
            `HUBKIT_TRUSTED_FINGERPRINTS` (comma-separated) adds to them.

    Raises:
        HandleError: the model needs ops this TensorFlow lacks.
        UnsafeModelError: risky ops were found and not allowed.
    """
    if report.unregistered_ops:
        raise errors.HandleError(
            f"{handle!r} needs ops that are not registered in this "
            f"TensorFlow: {', '.join(report.unregistered_ops)}. Import the "
            "package that defines them (e.g. `import tensorflow_text`) "
            "before loading. Custom ops run native code: only do so for a "
            "model you trust."
        )
    if not report.findings:
        return
    trusted = set(trusted_fingerprints or ()) | _env_fingerprints()
    if report.fingerprint in trusted:
        logger.warning(
            "Loading %s with %d risky ops: its fingerprint %s is trusted.",
            handle,
            len(report.findings),
            report.fingerprint,
        )
        return
    allowed = set(allow_ops or ())
    refused = [f for f in report.findings if f.op not in allowed]
    if not refused:
        logger.warning(
            "Loading %s with risky ops allowed by the caller: %s",
            handle,
            sorted({f.op for f in report.findings}),
        )
        return
    ops = sorted({f.op for f in refused})
    details = "\n".join(f"  - {f}" for f in refused[:20])
    raise errors.UnsafeModelError(
        f"Refusing to load {handle!r}: its graph has ops that touch files, "
        f"the network, Python or debug sinks ({', '.join(ops)}):\n{details}\n"
        f"If you trust this model, pass allow_ops={ops!r} (to hk.load or "
        "HubLayer), or trust its fingerprint "
        f"{report.fingerprint} (trusted_fingerprints=[...] or the "
        f"{constants.TRUSTED_FINGERPRINTS_ENV} environment variable)."
    )


def _env_fingerprints():
    raw = os.environ.get(constants.TRUSTED_FINGERPRINTS_ENV, "")
    return {f.strip() for f in raw.split(",") if f.strip()}


def _read_proto(path):
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    binary = os.path.join(path, "saved_model.pb")
    text = os.path.join(path, "saved_model.pbtxt")
    if tf.io.gfile.exists(binary):
        with tf.io.gfile.GFile(binary, "rb") as f:
            raw = f.read()
        proto.ParseFromString(raw)
    elif tf.io.gfile.exists(text):
        with tf.io.gfile.GFile(text, "rb") as f:
            raw = f.read()
        text_format.Parse(raw.decode("utf8"), proto)
    else:
        raise errors.UnsafeModelError(
            f"Cannot scan {path!r}: no saved_model.pb (a chunked "
            "saved_model.cpb cannot be scanned). Re-export it without "
            "chunking, or trust it explicitly."
        )
    return proto, raw


class _Graph:
    """The op and call structure of every MetaGraph of a SavedModel."""

    def __init__(self, proto, path):
        self.path = path
        self.op_counts = collections.Counter()
        self.functions = {}  # name -> FunctionDef
        self.graph_nodes = []  # (meta_graph, NodeDef)
        self.calls = collections.defaultdict(set)  # caller -> callees
        self.entries = collections.defaultdict(set)  # function -> entries
        self.saver = set()
        self.asset_args = {}  # function -> arg names bound to assets
        self.tf1_assets = set()  # graph nodes that hold asset file names
        for meta_graph in proto.meta_graphs:
            self._add_meta_graph(meta_graph)
        self._propagate()

    def _add_meta_graph(self, meta_graph):
        library = meta_graph.graph_def.library
        self.tf1_assets |= {
            a.tensor_info.name.split(":")[0] for a in meta_graph.asset_file_def
        }
        for fn in library.function:
            self.functions[fn.signature.name] = fn
            for node in fn.node_def:
                self.op_counts[node.op] += 1
                self.calls[fn.signature.name] |= _callees(node)
        reach = _graph_reach(meta_graph)
        saver = _reached(meta_graph, _saver_nodes(meta_graph.saver_def))
        for node in meta_graph.graph_def.node:
            self.op_counts[node.op] += 1
            self.graph_nodes.append((node, reach.get(node.name, set())))
            for callee in _callees(node):
                if node.name in saver:
                    self.saver.add(callee)
                else:
                    self.entries[callee] |= reach.get(node.name, set())
        self._add_object_graph(meta_graph)
        self._add_signatures(meta_graph)

    def _add_object_graph(self, meta_graph):
        objects = meta_graph.object_graph_def
        if not objects.nodes:
            return
        paths = _object_paths(objects)
        for node_id, node in enumerate(objects.nodes):
            kind = node.WhichOneof("kind")
            names = []
            if kind == "function":
                names = list(node.function.concrete_functions)
            elif kind == "bare_concrete_function":
                names = [node.bare_concrete_function.concrete_function_name]
            for name in names:
                self.entries[name].add(paths.get(node_id, f"node {node_id}"))
        for name, fn in objects.concrete_functions.items():
            self.asset_args[name] = _asset_bound_args(
                self.functions.get(name), fn, objects
            )

    def _add_signatures(self, meta_graph):
        by_name = {n.name: n for n in meta_graph.graph_def.node}
        for sig_name, sig in meta_graph.signature_def.items():
            for tensor in sig.outputs.values():
                node = by_name.get(tensor.name.split(":")[0])
                for callee in _callees(node) if node else ():
                    self.entries[callee].add(f"signature {sig_name}")

    def _propagate(self):
        # Entry points, saver membership and asset-bound arguments flow from
        # callers to callees (fixed point).
        changed = True
        while changed:
            changed = self._propagate_assets()
            for caller, callees in self.calls.items():
                for callee in callees:
                    before = len(self.entries[callee])
                    self.entries[callee] |= self.entries[caller]
                    if caller in self.saver and callee not in self.saver:
                        self.saver.add(callee)
                        changed = True
                    changed |= len(self.entries[callee]) != before

    def _propagate_assets(self):
        changed = False
        for caller, fn in self.functions.items():
            bound = self.asset_args.get(caller)
            if not bound:
                continue
            for node in fn.node_def:
                if "f" not in node.attr:
                    continue
                callee = self.functions.get(node.attr["f"].func.name)
                if callee is None:
                    continue
                args = [a.name for a in callee.signature.input_arg]
                inputs = [i for i in node.input if not i.startswith("^")]
                for arg, source in zip(args, inputs):
                    target = self.asset_args.setdefault(
                        callee.signature.name, set()
                    )
                    if source.split(":")[0] in bound and arg not in target:
                        target.add(arg)
                        changed = True
        return changed

    def findings(self):
        for name, fn in self.functions.items():
            for node in fn.node_def:
                finding = self._judge(node, name)
                if finding:
                    yield finding
        for node, entries in self.graph_nodes:
            finding = self._judge(node, "<graph>", entries)
            if finding:
                yield finding

    def _judge(self, node, function, graph_entries=None):
        if function == "<graph>":
            entries = tuple(sorted(graph_entries))
            # Checkpoint ops in a TF1 graph run only if something reaches
            # them (the saver's own nodes are never entries).
            in_saver = not entries
        else:
            entries = tuple(sorted(self.entries.get(function, ())))
            in_saver = function in self.saver or function.startswith(
                ("__inference__traced_save", "__inference__traced_restore")
            )
        if node.op in _SAVER_ONLY and in_saver:
            return None
        reason = RISKY_OPS.get(node.op)
        if reason is None and node.op == "PrintV2":
            stream = node.attr["output_stream"].s.decode("utf8", "replace")
            if stream.startswith(("file://", "gs://", "grpc://")):
                reason = f"prints to {stream}"
        if reason is None and node.op in ASSET_FILE_OPS:
            if not self._reads_own_asset(node, function):
                reason = "reads a file that is not one of the model's assets"
        if reason is None:
            return None
        return Finding(node.op, reason, function, node.name, entries)

    def _reads_own_asset(self, node, function):
        index = ASSET_FILE_OPS[node.op]
        if len(node.input) <= index:
            return False
        source = node.input[index].split(":")[0]
        if function == "<graph>":
            return source in self.tf1_assets
        return source in self.asset_args.get(function, ())

    def unregistered(self):
        from tensorflow.python.framework import op_def_registry

        return sorted(
            op
            for op in self.op_counts
            if op not in self.functions and op_def_registry.get(op) is None
        )


def _callees(node):
    found = set()
    for value in node.attr.values():
        if value.HasField("func") and value.func.name:
            found.add(value.func.name)
        for fn in value.list.func:
            found.add(fn.name)
    return found


def _saver_nodes(saver_def):
    names = (saver_def.save_tensor_name, saver_def.restore_op_name)
    return {n.split(":")[0] for n in names if n}


_INIT_COLLECTIONS = (
    "saved_model_main_op",
    "legacy_init_op",
    "table_initializer",
)


def _graph_reach(meta_graph):
    """Graph node -> the entry points (signatures, init ops) that run it."""
    roots = []
    for name, sig in meta_graph.signature_def.items():
        label = (
            "load-time init op __saved_model_init_op"
            if name == "__saved_model_init_op"
            else f"signature {name}"
        )
        roots += [(t.name, label) for t in sig.outputs.values()]
    for key in _INIT_COLLECTIONS:
        if key in meta_graph.collection_def:
            for name in meta_graph.collection_def[key].node_list.value:
                roots.append((name, f"load-time init op {key}"))
    reach = collections.defaultdict(set)
    for root, label in roots:
        for name in _reached(meta_graph, {root}):
            reach[name].add(label)
    return reach


def _reached(meta_graph, starts):
    """Names of the graph nodes that `starts` depend on (inclusive)."""
    nodes = {n.name: n for n in meta_graph.graph_def.node}
    seen = set()
    stack = [s.lstrip("^").split(":")[0] for s in starts if s]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack += [i.lstrip("^").split(":")[0] for i in nodes[name].input]
    return seen


def _object_paths(objects):
    paths = {0: "obj"}
    queue = [0]
    while queue:
        parent = queue.pop(0)
        for child in objects.nodes[parent].children:
            if child.node_id not in paths:
                paths[child.node_id] = f"{paths[parent]}.{child.local_name}"
                queue.append(child.node_id)
    return paths


def _asset_bound_args(fn_def, concrete, objects):
    """Argument names of `fn_def` that are bound to the model's assets."""
    if fn_def is None or not concrete.bound_inputs:
        return set()
    args = [a.name for a in fn_def.signature.input_arg]
    bound = list(concrete.bound_inputs)
    captured = args[len(args) - len(bound) :]
    return {
        arg
        for arg, node_id in zip(captured, bound)
        if objects.nodes[node_id].WhichOneof("kind") == "asset"
    }
