"""`hk.scan`: check every op a SavedModel can run against an allowlist.

"TensorFlow models are programs": a SavedModel can read and write files,
open connections or call Python, and a resource initializer does so inside
`tf.saved_model.load()` itself. The scan parses `saved_model.pb` as data
(nothing runs) and accepts the model only if every op in every function it
can run is on a reviewed list of op types that compute on tensors only
(`keras_hubkit/_safe_ops.py`). A handful of file ops that every SavedModel
needs (the checkpoint saver, vocabulary tables filled from the model's own
assets) are accepted only where the model's *structure* proves they act on
what TensorFlow itself passes them; nothing is exempt by name or position.

The scan is a gate, not a sandbox: see docs/guides/security.md for what it
can and cannot promise.
"""

import collections
import dataclasses
import hashlib
import logging
import ntpath
import os
import posixpath

from keras_hubkit import _compat
from keras_hubkit import _safe_ops
from keras_hubkit import _validate
from keras_hubkit import constants
from keras_hubkit import errors

logger = logging.getLogger(__name__)

# Plain-English hints for ops that are off the list for a well-known reason;
# any other op off the list gets the generic reason.
_HINTS = {
    "ReadFile": "reads a file",
    "WriteFile": "writes a file",
    "MatchingFiles": "lists files",
    "ImmutableConst": "maps a file into memory",
    "PyFunc": "calls Python code",
    "PyFuncStateless": "calls Python code",
    "EagerPyFunc": "calls Python code",
    "CacheDataset": "caches a dataset in files",
    "CacheDatasetV2": "caches a dataset in files",
    "MatchingFilesDataset": "lists files",
    "TextLineDataset": "reads files",
    "TFRecordDataset": "reads files",
    "TFRecordDatasetV2": "reads files",
    "FixedLengthRecordDatasetV2": "reads files",
    "ReaderReadV2": "reads a file named in a queue",
    "ReaderReadUpToV2": "reads a file named in a queue",
    "WholeFileReaderV2": "reads files named in a queue",
    "TextLineReaderV2": "reads files named in a queue",
    "TFRecordReaderV2": "reads files named in a queue",
    "FixedUnigramCandidateSampler": "reads the vocabulary file in its attr",
}
_GENERIC = "not on the allowlist of op types that compute on tensors only"
_SAVE_OPS = {"SaveV2": (0,), "RestoreV2": (0,), "MergeV2Checkpoints": (0, 1)}
_TABLE_FILE_OPS = {
    "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2",
}
_CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}
_PASS_THROUGH = {"Identity", "Snapshot"}
_PRINT_STREAMS = {"stderr", "stdout", "log(info)", "log(warning)", "log(error)"}
_LOAD_TIME_SUFFIXES = ("_initialize", "_create_resource", "_destroy_resource")
_INIT_LABEL = "load-time init op"
SAVER_RESTORE = "load-time saver restore"
SAVER_SAVE = "saver save"
_SAVER_LABELS = {SAVER_RESTORE, SAVER_SAVE}
_GRAPH = "<graph>"
ASSET = "Asset"  # not an op: an asset of the MetaGraph, reported like one
ASSET_LABEL = "load-time asset path"
_MAX_EMBEDDED_DEPTH = 4
_LOCAL_INIT_COLLECTIONS = (
    "saved_model_main_op",
    "legacy_init_op",
    "table_initializer",
    "local_variables",
)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One op the scan refuses: which, why, and where it would run."""

    op: str
    reason: str
    function: str
    node: str
    entry_points: tuple

    @property
    def runs_at_load(self):
        """Whether loading alone runs it (an initializer or the saver)."""
        return any(
            p.endswith(_LOAD_TIME_SUFFIXES) or p.startswith("load-time")
            for p in self.entry_points
        )

    def __str__(self):
        where = ", ".join(self.entry_points) or "not reachable from an API"
        place = "the graph" if self.function == _GRAPH else self.function
        when = (
            "RUNS AT LOAD TIME (inside tf.saved_model.load)"
            if self.runs_at_load
            else "runs on the call path"
        )
        return (
            f"{self.op} ({self.reason}) in {place}, node {self.node!r}; "
            f"{when}, reached from: {where}"
        )


@dataclasses.dataclass(frozen=True)
class ScanReport:
    """What `hk.scan` found in a SavedModel.

    Attributes:
        path: the SavedModel folder.
        fingerprint: SHA-256 of `saved_model.pb`, to pin a reviewed model.
        op_counts: every op type and how often it occurs in the scanned
            MetaGraph (graph, library functions, embedded graphs).
        findings: the ops that are neither on the allowlist nor
            structurally exempt, with where they run.
        unregistered_ops: op types this TensorFlow does not know (custom
            ops whose package is not imported).
        functions: library functions by name, with the entry points
            (object paths, signatures, load-time initializers, the saver)
            reaching them.
        tags: the tags of the MetaGraph that was scanned (the one
            `tf.saved_model.load` would load).
        exemptions: the structurally exempt ops, one line each (e.g. the
            saver's `SaveV2` on its checkpoint prefix).
    """

    path: str
    fingerprint: str
    op_counts: dict
    findings: tuple
    unregistered_ops: tuple
    functions: dict
    tags: tuple = ()
    exemptions: tuple = ()

    @property
    def safe(self):
        """Whether the model passes the gate with no opt-in.

        True when every op is on the allowlist or structurally exempt, and
        every op is registered in this TensorFlow: `hk.load` then accepts
        the model without `allow_ops=` or a trusted fingerprint.
        """
        return not self.findings and not self.unregistered_ops

    @property
    def missing_packages(self):
        """Pip packages known to register the unregistered ops."""
        return tuple(
            sorted(
                {
                    p
                    for p in map(_safe_ops.package_for, self.unregistered_ops)
                    if p
                }
            )
        )

    def summary(self):
        """A human-readable report."""
        tags = ", ".join(self.tags) or "none"
        lines = [
            f"SavedModel {self.path}",
            f"  fingerprint (sha256 of saved_model.pb): {self.fingerprint}",
            f"  MetaGraph tags: {tags}; {sum(self.op_counts.values())} ops "
            f"of {len(self.op_counts)} types in the graph and "
            f"{len(self.functions)} functions",
        ]
        if self.unregistered_ops:
            lines.append(
                "  ops not registered in this TensorFlow: "
                + ", ".join(self.unregistered_ops)
            )
        if self.exemptions:
            lines.append(
                f"  {len(self.exemptions)} file ops exempt by structure:"
            )
            lines += [f"    - {e}" for e in self.exemptions[:10]]
        if self.findings:
            lines.append(f"  {len(self.findings)} risky ops (off the list):")
            lines += [f"    - {f}" for f in self.findings]
        else:
            lines.append(
                "  no risky ops: every op computes on tensors only (allowlist)"
            )
        return "\n".join(lines)


def scan(handle, tags=None) -> ScanReport:
    """Scans a SavedModel's ops without loading it.

    Args:
        handle: a path or URL (resolved with `hk.resolve`).
        tags: the MetaGraph tags `hk.load` would be given (default: the
            SavedModel's only MetaGraph, as `tf.saved_model.load` picks).

    Returns:
        A `ScanReport`; `report.safe` says whether `hk.load` accepts the
        model with no opt-in.

    Raises:
        HandleError: `saved_model.pb` is missing, unreadable, or has no
            MetaGraph matching `tags`.

    Example:

    ```python
    report = hk.scan("/models/my_model")
    print(report.summary())
    assert report.safe
    ```
    """
    from keras_hubkit.resolver import resolve

    return scan_path(resolve(handle), tags=tags)


_REPORTS = collections.OrderedDict()  # content key -> ScanReport
_MAX_REPORTS = 64


def scan_path(path: str, tags=None, *, saved=None) -> ScanReport:
    """`scan` for a local SavedModel folder.

    `saved` is the caller's `SavedGraph` of the folder's graph file (from
    `_validate.read_saved_model`): the bytes it checked are the bytes
    scanned, parsed once.

    A report is kept for the life of the process and reused while the bytes
    of `saved_model.pb` (and `fingerprint.pb`, the tags and the assets
    folder) are unchanged, so search trials that reload a model do not scan
    it again. Any change to the file's content is scanned afresh, and a
    report that named unregistered ops is redone once one of them has been
    registered (a custom-op package imported since). A model with a
    folder under `assets/` that cannot be listed is scanned every time.
    """
    if saved is None:
        raw, is_text = _read_raw(path)
        proto = None
    else:
        proto, raw, is_text = saved
    digest = hashlib.sha256(raw).hexdigest()
    assets = _assets_state(path)
    if assets is None:  # a folder there cannot be listed: nothing to key on
        return _scan_raw(path, raw, is_text, tags, proto, digest)
    key = (
        os.path.abspath(path),
        digest,
        _fingerprint_digest(path),
        _tags_key(tags),
        assets,
    )
    report = _REPORTS.get(key)
    if report is None or any(
        _compat.is_op_registered(op) for op in report.unregistered_ops
    ):
        report = _scan_raw(path, raw, is_text, tags, proto, digest)
        _REPORTS[key] = report
        while len(_REPORTS) > _MAX_REPORTS:
            _REPORTS.popitem(last=False)
    return report


def check(report, handle, allow_ops=None, trusted_fingerprints=None):
    """Raises unless `report` is clean or the caller opted in.

    Args:
        report: a `ScanReport`.
        handle: the handle, for messages.
        allow_ops: op types the caller accepts for this call.
        trusted_fingerprints: fingerprints the caller trusts entirely;
            `HUBKIT_TRUSTED_FINGERPRINTS` (comma-separated) adds to them.

    Raises:
        UnsafeModelError: ops off the allowlist were found and not allowed.
        CustomOpError: the model needs ops this TensorFlow lacks (a
            custom-op package is not imported).
    """
    if report.findings:
        _check_findings(report, handle, allow_ops, trusted_fingerprints)
    if report.unregistered_ops:
        raise errors.CustomOpError(_custom_op_message(report, handle))


def _check_findings(report, handle, allow_ops, trusted_fingerprints):
    trusted = set(trusted_fingerprints or ()) | _env_fingerprints()
    if report.fingerprint in trusted:
        logger.warning(
            "Loading %s with %d ops off the allowlist: its fingerprint %s "
            "is trusted.",
            handle,
            len(report.findings),
            report.fingerprint,
        )
        return
    allowed = set(allow_ops or ())
    refused = [f for f in report.findings if f.op not in allowed]
    if not refused:
        logger.warning(
            "Loading %s with ops off the allowlist, allowed by the caller: %s",
            handle,
            sorted({f.op for f in report.findings}),
        )
        return
    ops = sorted({f.op for f in report.findings})
    details = "\n".join(f"  - {f}" for f in refused[:20])
    at_load = any(f.runs_at_load for f in refused)
    raise errors.UnsafeModelError(
        f"Refusing to load {handle!r}: it has ops that are not on the "
        f"allowlist of op types that compute on tensors only "
        f"({', '.join(sorted({f.op for f in refused}))})"
        + (", some of them running inside the load itself" if at_load else "")
        + f":\n{details}\n"
        f"If you trust this model, pass allow_ops={ops!r} (to hk.load or "
        "HubLayer), or trust its fingerprint "
        f"{report.fingerprint} (trusted_fingerprints=[...] or the "
        f"{constants.TRUSTED_FINGERPRINTS_ENV} environment variable)."
    )


def _custom_op_message(report, handle):
    ops = ", ".join(report.unregistered_ops)
    packages = report.missing_packages
    if packages:
        modules = [_module_of(p) for p in packages]
        fix = (
            f"They come from {' and '.join(packages)}: "
            f"`pip install {' '.join(packages)}`, then "
            + " and ".join(f"`import {m}`" for m in modules)
            + " before loading (retrying in the same process works)."
        )
    else:
        fix = (
            "Import the package that registers them (for example "
            "`import tensorflow_text`) before loading; retrying in the same "
            "process works."
        )
    return (
        f"Expected a model whose ops this TensorFlow knows. Received: "
        f"handle={handle!r} needs ops that are not registered: {ops}. "
        f"{fix} Custom ops run native code: import their package only for a "
        "model you trust."
    )


def _module_of(package):
    for family in _safe_ops.EXTENSION_FAMILIES.values():
        if family.package == package:
            return family.module
    return package.replace("-", "_")


def _env_fingerprints():
    raw = os.environ.get(constants.TRUSTED_FINGERPRINTS_ENV, "")
    return {f.strip() for f in raw.split(",") if f.strip()}


# ------------------------------------------------------------------ reading
def _read_raw(path):
    import tensorflow as tf

    for name, is_text in (
        ("saved_model.pb", False),
        ("saved_model.pbtxt", True),
    ):
        file = os.path.join(path, name)
        if tf.io.gfile.exists(file):
            with tf.io.gfile.GFile(file, "rb") as f:
                return f.read(), is_text
    if tf.io.gfile.exists(os.path.join(path, "saved_model.cpb")):
        raise errors.UnsafeModelError(
            f"Expected a saved_model.pb to scan. Received: {path!r}, which "
            "holds a chunked saved_model.cpb, which cannot be scanned. "
            "Re-export it without chunking, or trust it explicitly."
        )
    raise errors.InvalidSavedModelError(
        f"Expected a SavedModel folder (with saved_model.pb). Received: "
        f"{path!r}, which has none. Pass the folder written by "
        "tf.saved_model.save (or hk.export_saved_model); for a .keras file, "
        "use `hubkit inspect model.keras` or `hk.keras_file`."
    )


def _parse(path, raw, is_text):
    name = "saved_model.pbtxt" if is_text else "saved_model.pb"
    return _validate.parse_saved_model(
        raw, is_text, os.path.join(path, name), path
    )


def _fingerprint_digest(path):
    file = os.path.join(path, "fingerprint.pb")
    try:
        with open(file, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _tags_key(tags):
    if tags is None:
        return None
    if isinstance(tags, str):
        return (tags,)
    return tuple(sorted(set(tags)))


def _assets_state(path):
    """Names, link status and targets under assets/ (part of the memo key),
    or None when a folder there cannot be listed: what it holds could then
    change unseen, so the report is not reused."""
    root = os.path.join(path, "assets")
    if not os.path.isdir(root):
        return ()
    state = [("", os.path.islink(root), os.path.realpath(root))]
    unlisted = []
    for folder, dirs, files in os.walk(root, onerror=unlisted.append):
        for name in sorted(dirs + files):
            full = os.path.join(folder, name)
            state.append(
                (
                    os.path.relpath(full, root),
                    os.path.islink(full),
                    os.path.realpath(full),
                )
            )
    return None if unlisted else tuple(state)


def select_meta_graph(proto, tags, path="SavedModel"):
    """The MetaGraph `tf.saved_model.load(path, tags)` loads (same rules)."""
    graphs = list(proto.meta_graphs)
    wanted = None if tags is None else set(_tags_key(tags))
    available = [sorted(mg.meta_info_def.tags) for mg in graphs]
    if not graphs:
        raise errors.HandleError(
            f"Expected a SavedModel with a MetaGraph. Received: {path!r} has "
            "none. Download or export the model again."
        )
    if len(graphs) == 1 and graphs[0].HasField("object_graph_def"):
        if wanted is not None and wanted != set(graphs[0].meta_info_def.tags):
            raise errors.HandleError(
                f"Expected tags matching the MetaGraph of {path!r}. Received: "
                f"tags={sorted(wanted)}; the SavedModel has {available}. Omit "
                "tags= or pass matching ones."
            )
        return graphs[0]
    if wanted is None:
        if len(graphs) != 1:
            raise errors.HandleError(
                f"Expected tags= for {path!r}, which has {len(graphs)} "
                f"MetaGraphs. Received: tags=None. Pass one of {available}."
            )
        return graphs[0]
    for mg in graphs:
        if set(mg.meta_info_def.tags) == wanted:
            return mg
    raise errors.HandleError(
        f"Expected tags matching a MetaGraph of {path!r}. Received: "
        f"tags={sorted(wanted)}; the SavedModel has {available}."
    )


def _scan_raw(path, raw, is_text, tags, proto, digest):
    if proto is None:
        proto = _parse(path, raw, is_text)
    meta_graph = select_meta_graph(proto, tags, path)
    analysis = _Analysis(meta_graph.graph_def, meta_graph, path)
    return ScanReport(
        path=path,
        fingerprint=digest,
        op_counts=dict(analysis.op_counts),
        findings=tuple(analysis.findings),
        unregistered_ops=tuple(sorted(analysis.unregistered)),
        functions={
            n: tuple(sorted(analysis.entries.get(n, ())))
            for n in analysis.functions
        },
        tags=tuple(sorted(meta_graph.meta_info_def.tags)),
        exemptions=tuple(analysis.exemptions),
    )


# ----------------------------------------------------------------- analysis
class _Scope:
    """The graph, or one function of the library: nodes and arguments."""

    def __init__(self, name, nodes, args=()):
        self.name = name
        self.nodes = list(nodes)
        self.by_name = {n.name: n for n in self.nodes}
        self.args = list(args)
        self._arg_set = set(self.args)

    def producer(self, ref):
        """("arg", name) or ("node", NodeDef) for a tensor reference."""
        ref = ref.lstrip("^")
        if self.name == _GRAPH:
            node = self.by_name.get(ref.split(":")[0])
            return ("node", node) if node is not None else (None, None)
        if ":" not in ref and ref in self._arg_set:
            return "arg", ref
        node = self.by_name.get(ref.split(":")[0])
        return ("node", node) if node is not None else (None, None)


def _producer(scope, ref, bound, depth):
    """`(decided, node)`: the node that makes `ref`, or a verdict.

    A function argument bound to a proven name decides True and any other
    argument False; an unknown producer, or a chain deeper than 16 nodes,
    decides False (what the scan cannot follow is unsafe).
    """
    kind, value = scope.producer(ref)
    if kind == "arg":
        return value in bound.get(scope.name, ()), None
    if kind is None or depth > 16:
        return False, None
    return None, value


def _data_inputs(node):
    return [i for i in node.input if not i.startswith("^")]


def _func_attrs(node):
    found = []
    for value in node.attr.values():
        kind = value.WhichOneof("value")
        if kind == "func" and value.func.name:
            found.append(value.func.name)
        elif kind == "list" and value.list.func:
            found += [fn.name for fn in value.list.func]
    return found


def _attr_string(node, name):
    # Reading a missing key of a proto map would insert it: check first.
    if name not in node.attr:
        return b""
    return node.attr[name].s


class _Analysis:
    """Judges every node of one MetaGraph (or of a graph carried as data).

    `meta_graph` is None for an embedded graph: it gets no exemptions, and
    its entry points are those of the node that carries it.
    """

    def __init__(self, graph_def, meta_graph, path, inherited=(), depth=0):
        self.path = path
        self.meta_graph = meta_graph
        self.depth = depth
        self.inherited = set(inherited)
        self.op_counts = collections.Counter()
        self.findings = []
        self.exemptions = []
        self.unregistered = set()
        self.graph = _Scope(_GRAPH, graph_def.node)
        self.functions = collections.defaultdict(list)  # name -> [_Scope]
        for fn in graph_def.library.function:
            self.functions[fn.signature.name].append(
                _Scope(
                    fn.signature.name,
                    fn.node_def,
                    [a.name for a in fn.signature.input_arg],
                )
            )
        self.scopes = [self.graph] + [
            s for scopes in self.functions.values() for s in scopes
        ]
        # TF2 SavedModels are loaded from their object graph; the graph's
        # own nodes only run under TF1 loaders (never by hk.load).
        self.object_based = meta_graph is not None and meta_graph.HasField(
            "object_graph_def"
        )
        self.sites = collections.defaultdict(list)  # callee -> call sites
        self.graph_callees = {}  # graph node name -> functions it calls
        self.op_calls = []  # (scope, node, op type named by a func attr)
        self.entries = collections.defaultdict(set)  # function -> labels
        self.node_entries = {}  # graph node name -> labels
        self._file_op_callers = None
        self.gradient_functions = set()  # run by name: see _build_calls
        self._build_calls(graph_def.library)
        self._label_graph()
        self._label_objects()
        self._propagate_entries()
        self.prefix_args = self._bound_args(self._prefix_ok)
        # TF2 loaders run no graph node, so only the object graph binds.
        self.asset_args = self._bound_args(
            self._asset_ok,
            self._object_sites,
            graph_sites=not self.object_based,
        )
        self._judge_all()
        self._judge_assets()

    # ------------------------------------------------------------ calls
    def _build_calls(self, library):
        names = set(self.functions)
        # TensorFlow's loader registers each saved gradient under a name it
        # makes at load time ("CustomGradient-N", predictable), and an op
        # finds its gradient by the name in its `_gradient_op_type` attr, not
        # by the op type saved beside the gradient. So any node with that
        # attr may call any of the model's gradient functions.
        gradients = sorted(
            {g.gradient_func for g in library.registered_gradients}
        )
        self.gradient_functions = set(gradients) | {
            g.gradient_func for g in library.gradient
        }
        for scope in self.scopes:
            self.op_counts.update(node.op for node in scope.nodes)
            for node in scope.nodes:
                callees = set(_func_attrs(node))
                if node.op in names:
                    callees.add(node.op)
                if scope is self.graph:
                    self.graph_callees[node.name] = callees
                if callees:
                    self._add_sites(scope, node, callees, names)
                if gradients and "_gradient_op_type" in node.attr:
                    for gradient in gradients:
                        self.sites[gradient].append((scope, node, False, []))
        for grad in library.gradient:
            for scope in self.functions.get(grad.function_name, ()):
                self.sites[grad.gradient_func].append((scope, None, False, []))

    def _add_sites(self, scope, node, callees, names):
        inputs = _data_inputs(node)
        for callee in callees - names:
            # TensorFlow runs a function name that is not in the library as
            # that op ("f": "ReadFile"): judge it too.
            self.op_calls.append((scope, node, callee))
        for callee in callees:
            direct = node.op == callee or (
                node.op in _CALL_OPS and node.attr["f"].func.name == callee
            )
            self.sites[callee].append((scope, node, direct, inputs))

    # ---------------------------------------------------------- entries
    def _label_graph(self):
        if self.meta_graph is None:
            return
        roots = []
        for name, sig in self.meta_graph.signature_def.items():
            label = (
                f"{_INIT_LABEL} {name}"
                if name == "__saved_model_init_op"
                else f"signature {name}"
            )
            refs = list(sig.outputs.values()) + list(sig.inputs.values())
            roots += [(t.name, label) for t in refs]
        roots += self._collection_roots()
        saver = self.meta_graph.saver_def
        if saver.restore_op_name:
            roots.append((saver.restore_op_name, SAVER_RESTORE))
        if saver.save_tensor_name:
            roots.append((saver.save_tensor_name, SAVER_SAVE))
        reach = collections.defaultdict(set)
        for ref, label in roots:
            for name in self._graph_closure(ref):
                reach[name].add(label)
        self.node_entries = reach
        for node in self.graph.nodes:
            labels = reach.get(node.name, set())
            for callee in self.graph_callees.get(node.name, ()):
                self.entries[callee] |= labels

    def _collection_roots(self):
        from tensorflow.core.framework import variable_pb2

        roots = []
        for key, collection in self.meta_graph.collection_def.items():
            load_time = key in _LOCAL_INIT_COLLECTIONS
            label = f"{_INIT_LABEL} {key}" if load_time else f"collection {key}"
            roots += [(n, label) for n in collection.node_list.value]
            for blob in collection.bytes_list.value:
                var = variable_pb2.VariableDef()
                try:
                    var.ParseFromString(blob)
                except Exception:  # not a VariableDef: nothing to follow
                    continue
                for ref in (var.initializer_name, var.snapshot_name):
                    if ref:
                        roots.append((ref, label))
        return roots

    def _graph_closure(self, ref):
        seen = set()
        stack = [ref.lstrip("^").split(":")[0]]
        while stack:
            name = stack.pop()
            if name in seen or name not in self.graph.by_name:
                continue
            seen.add(name)
            stack += [
                i.lstrip("^").split(":")[0]
                for i in self.graph.by_name[name].input
            ]
        return seen

    def _label_objects(self):
        if not self.object_based:
            return
        objects = self.meta_graph.object_graph_def
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

    def _propagate_entries(self):
        for name in self.functions:
            self.entries[name] |= self.inherited
        changed = True
        while changed:
            changed = False
            for callee, sites in self.sites.items():
                for scope, node, _, _ in sites:
                    if scope.name == _GRAPH and self.meta_graph is not None:
                        continue  # labelled node by node in _label_graph
                    before = len(self.entries[callee])
                    self.entries[callee] |= self._node_entries(scope, node)
                    changed |= len(self.entries[callee]) != before

    def _saver_only(self, scope, node):
        if self.meta_graph is None:
            return False
        if scope.name == _GRAPH:
            labels = self.node_entries.get(node.name, set())
        else:
            labels = self.entries.get(scope.name, set())
        return bool(labels) and labels <= _SAVER_LABELS

    # ------------------------------------------------- argument binding
    def _object_sites(self, name):
        """Arg names the loader binds to safe assets (object graph)."""
        if not self.object_based:
            return None
        objects = self.meta_graph.object_graph_def
        concrete = objects.concrete_functions.get(name)
        if concrete is None:
            return None
        scopes = self.functions.get(name, ())
        if len(scopes) != 1:
            return set()
        args = scopes[0].args
        bound = list(concrete.bound_inputs)
        captured = args[len(args) - len(bound) :] if bound else []
        return {
            arg
            for arg, node_id in zip(captured, bound)
            if self._safe_asset_node(objects, node_id)
        }

    def _safe_asset_node(self, objects, node_id):
        if node_id >= len(objects.nodes):
            return False
        node = objects.nodes[node_id]
        if node.WhichOneof("kind") != "asset":
            return False
        index = node.asset.asset_file_def_index
        defs = self.meta_graph.asset_file_def
        return index < len(defs) and _plain_asset(
            self.path, defs[index].filename
        )

    def _bound_args(self, derives, object_sites=None, graph_sites=True):
        """Function -> args that every caller provably binds (fixed point).

        An argument is bound only if the function has callers and each one
        passes, in that position, a value `derives` accepts: a call op maps
        its inputs to the callee's arguments one to one. Any other kind of
        caller (a loop, a dataset, a gradient) proves nothing.
        """
        bound = {name: set() for name in self.functions}
        if self._file_op_callers is None:  # the same for both fixed points
            self._file_op_callers = self._callers_of_file_ops()
        needed = self._file_op_callers
        changed = True
        while changed:
            changed = False
            for name in needed:
                scopes = self.functions[name]
                if len(scopes) != 1 or name in self.gradient_functions:
                    # Duplicate definitions prove nothing; nor do the callers
                    # of a gradient, which TensorFlow also runs by a name in
                    # a process-wide registry (another model's op can name
                    # it).
                    continue
                new = self._args_bound_by_all(
                    name, scopes[0], derives, bound, object_sites, graph_sites
                )
                if new != bound[name]:
                    bound[name] = new
                    changed = True
        return bound

    def _callers_of_file_ops(self):
        """Functions with a saver or table-file op, and all their callers."""
        file_ops = set(_SAVE_OPS) | _TABLE_FILE_OPS
        needed = {
            name
            for name, scopes in self.functions.items()
            if any(n.op in file_ops for s in scopes for n in s.nodes)
        }
        stack = list(needed)
        while stack:
            for caller, *_ in self.sites.get(stack.pop(), ()):
                if caller.name in self.functions and caller.name not in needed:
                    needed.add(caller.name)
                    stack.append(caller.name)
        return sorted(needed)

    def _args_bound_by_all(
        self, name, scope, derives, bound, object_sites, graph_sites
    ):
        candidates = None
        from_objects = object_sites(name) if object_sites else None
        if from_objects is not None:
            candidates = set(from_objects)
        sites = [
            s
            for s in self.sites.get(name, ())
            if graph_sites or s[0].name != _GRAPH
        ]
        if not sites and candidates is None:
            return set()
        for caller, _, direct, inputs in sites:
            if not direct:
                return set()
            ok = {
                arg
                for arg, ref in zip(scope.args, inputs)
                if derives(caller, ref, bound)
            }
            candidates = ok if candidates is None else candidates & ok
        return candidates or set()

    def _prefix_ok(self, scope, ref, bound, depth=0):
        """Whether `ref` is the checkpoint prefix, or a name under it."""
        decided, node = _producer(scope, ref, bound, depth)
        if node is None:
            return decided
        if scope.name == _GRAPH and self.meta_graph is not None:
            filename = self.meta_graph.saver_def.filename_tensor_name
            if node.name == filename.split(":")[0]:
                return True
        inputs = _data_inputs(node)
        if node.op in _PASS_THROUGH or node.op == "ShardedFilename":
            return self._prefix_ok(scope, inputs[0], bound, depth + 1)
        if node.op == "Pack":
            return all(
                self._prefix_ok(scope, i, bound, depth + 1) for i in inputs
            )
        if node.op == "StringJoin":
            separator = _attr_string(node, "separator")
            return (
                b".." not in separator
                and bool(inputs)
                and self._prefix_ok(scope, inputs[0], bound, depth + 1)
                and all(_safe_suffix(scope, i) for i in inputs[1:])
            )
        return False

    def _asset_ok(self, scope, ref, bound, depth=0):
        """Whether `ref` is the path of one of the model's own safe assets."""
        decided, node = _producer(scope, ref, bound, depth)
        if node is None:
            return decided
        if scope.name == _GRAPH and self.meta_graph and not self.object_based:
            for asset in self._asset_defs():
                if asset.tensor_info.name.split(":")[0] == node.name:
                    return _plain_asset(self.path, asset.filename)
        if node.op in _PASS_THROUGH:
            return self._asset_ok(
                scope, _data_inputs(node)[0], bound, depth + 1
            )
        return False

    # ------------------------------------------------------------ judge
    def _judge_assets(self):
        # The loader hands the model join(assets/, filename) -- an absolute
        # name or '..' escapes -- and re-exporting the loaded object copies
        # that file into the export, even if no op reads it.
        for name in self._bad_asset_names():
            self.findings.append(
                Finding(
                    ASSET,
                    "an asset whose file name leaves assets/ (absolute, '..' "
                    "or a link): the loaded model would get that path, and "
                    "re-exporting it would copy that file",
                    "<object graph assets>",
                    name,
                    (ASSET_LABEL,),
                )
            )

    def _judge_all(self):
        dead = collections.Counter()
        for scope in self.scopes:
            for node in scope.nodes:
                reason = self._judge(scope, node)
                if reason is not None and self._dead(scope, node):
                    dead[node.op] += 1
                elif reason is not None:
                    self.findings.append(
                        Finding(
                            node.op,
                            reason,
                            scope.name,
                            node.name,
                            tuple(sorted(self._node_entries(scope, node))),
                        )
                    )

        for scope, node, op in self.op_calls:
            self.op_counts[op] += 1
            if self._dead(scope, node):
                continue
            if op in _safe_ops.SAFE_OPS:
                continue
            if not _compat.is_op_registered(op):
                self.unregistered.add(op)
                continue
            self.findings.append(
                Finding(
                    op,
                    f"{_HINTS.get(op, _GENERIC)}; run as a function by this "
                    "node's function-valued attr",
                    scope.name,
                    node.name,
                    tuple(sorted(self._node_entries(scope, node))),
                )
            )
        if dead:
            self.exemptions.append(
                "graph nodes that no signature, init op, collection or saver "
                "reaches (a TF1 loader never runs them): "
                + ", ".join(f"{op} x{n}" for op, n in sorted(dead.items()))
            )

    def _dead(self, scope, node):
        """A TF1 graph node that nothing the loader runs depends on."""
        return (
            scope.name == _GRAPH
            and self.meta_graph is not None
            and not self.object_based
            and not self.node_entries.get(node.name)
        )

    def _node_entries(self, scope, node):
        if scope.name != _GRAPH:
            return self.entries.get(scope.name, set())
        if self.meta_graph is None:
            return self.inherited
        return self.node_entries.get(node.name, set())

    def _judge(self, scope, node):
        """None if `node` may run, else the reason it is refused."""
        op = node.op
        if op in self.functions:
            return None  # a call: the callee is judged on its own
        if op == "Const":
            return _judge_constant(node)
        if op in _safe_ops.SAFE_OPS:
            return None
        if self.meta_graph is None and op in _safe_ops.EMBEDDED_GRAPH_OPS:
            return None
        if not _compat.is_op_registered(op):
            self.unregistered.add(op)
            return None
        if op in _safe_ops.EXTENSION_OPS:
            return None
        if op in _SAVE_OPS:
            return self._judge_saver(scope, node)
        if op in _TABLE_FILE_OPS:
            return self._judge_table(scope, node)
        if op == "DatasetFromGraph":
            return self._judge_embedded(scope, node)
        if op in ("DecodeProtoV2", "EncodeProto"):
            source = _attr_string(node, "descriptor_source") or b"local://"
            if source == b"local://" or source.startswith(b"bytes://"):
                return None
            where = source.decode("utf8", "replace")
            return f"loads a proto descriptor from {where!r}"
        if op == "PrintV2":
            stream = _attr_string(node, "output_stream").decode(
                "utf8", "replace"
            )
            stream = stream or "stderr"  # the OpDef's default
            if stream in _PRINT_STREAMS:
                return None
            return f"prints to {stream!r}"
        return _HINTS.get(op, _GENERIC)

    def _judge_saver(self, scope, node):
        inputs = _data_inputs(node)
        proven = self._saver_only(scope, node) and all(
            i < len(inputs)
            and self._prefix_ok(scope, inputs[i], self.prefix_args)
            for i in _SAVE_OPS[node.op]
        )
        if not proven:
            return (
                "checkpoint file I/O outside the saver's own checkpoint prefix "
                "(only the saver registered in saver_def is exempt)"
            )
        self.exemptions.append(
            f"{node.op} in {scope.name}: the saver, on the checkpoint prefix "
            "TensorFlow passes"
        )
        return None

    def _judge_table(self, scope, node):
        inputs = _data_inputs(node)
        proven = len(inputs) > 1 and self._asset_ok(
            scope, inputs[1], self.asset_args
        )
        if proven and scope.name == _GRAPH:
            # A TF1 loader feeds the asset path only to its init op.
            labels = self.node_entries.get(node.name, set())
            proven = bool(labels) and all(
                x.startswith(_INIT_LABEL) for x in labels
            )
        if not proven:
            bad = self._bad_asset_names()
            return (
                "reads a file that is not provably one of the model's own "
                "assets (a plain relative name inside assets/)"
                + (f"; asset file names refused: {bad}" if bad else "")
            )
        self.exemptions.append(
            f"{node.op} in {scope.name}: reads one of the model's assets"
        )
        return None

    def _asset_defs(self):
        """The MetaGraph's assets, also those of the older TF1 collection
        `saved_model_assets` (TensorFlow's loaders read both)."""
        from tensorflow.core.protobuf import meta_graph_pb2

        defs = list(self.meta_graph.asset_file_def)
        collection = self.meta_graph.collection_def.get("saved_model_assets")
        for packed in collection.any_list.value if collection else ():
            asset = meta_graph_pb2.AssetFileDef()
            if packed.Unpack(asset):
                defs.append(asset)
            else:  # not an AssetFileDef: nothing can be proven about it
                defs.append(meta_graph_pb2.AssetFileDef(filename=""))
        return defs

    def _bad_asset_names(self):
        if self.meta_graph is None:
            return []
        return sorted(
            {
                a.filename
                for a in self._asset_defs()
                if not _plain_asset(self.path, a.filename)
            }
        )

    def _judge_embedded(self, scope, node):
        from google.protobuf import message
        from tensorflow.core.framework import graph_pb2

        inputs = _data_inputs(node)
        value = _string_constant(scope, inputs[0]) if inputs else None
        if value is None or self.depth >= _MAX_EMBEDDED_DEPTH:
            return "rebuilds a dataset from a graph that is not a constant"
        graph_def = graph_pb2.GraphDef()
        try:
            graph_def.ParseFromString(value)
        except message.DecodeError:
            return "rebuilds a dataset from a graph that cannot be decoded"
        inner = _Analysis(
            graph_def,
            None,
            self.path,
            self._node_entries(scope, node),
            self.depth + 1,
        )
        prefix = f"{scope.name} > graph in node {node.name!r}"
        self.op_counts.update(inner.op_counts)
        self.unregistered |= inner.unregistered
        for f in inner.findings:
            function = (
                prefix if f.function == _GRAPH else f"{prefix} > {f.function}"
            )
            self.findings.append(dataclasses.replace(f, function=function))
        return None


_VARIANT = 21  # types_pb2.DT_VARIANT
# Variant values a constant may hold: containers of tensors. A dataset or
# iterator encoded in a constant would be a graph carried as data.
_DATA_VARIANTS = {
    "tensorflow::TensorList",
    "tensorflow::TensorMap",
    "tensorflow::RaggedTensorVariant",
    "tensorflow::CompositeTensorVariant",
}


def _judge_constant(node):
    if "value" not in node.attr or node.attr["value"].tensor.dtype != _VARIANT:
        return None
    kinds = {v.type_name for v in node.attr["value"].tensor.variant_val}
    unknown = sorted(kinds - _DATA_VARIANTS)
    if unknown:
        return f"a constant holding {', '.join(unknown)} (not plain tensors)"
    return None


def _string_constant(scope, ref, depth=0):
    kind, node = scope.producer(ref)
    if kind != "node" or depth > 16:
        return None
    if node.op in _PASS_THROUGH:
        inputs = _data_inputs(node)
        return _string_constant(scope, inputs[0], depth + 1) if inputs else None
    if node.op != "Const":
        return None
    values = node.attr["value"].tensor.string_val
    return values[0] if len(values) == 1 else None


def _safe_suffix(scope, ref, depth=0):
    """A constant string that cannot climb out of the prefix ('..')."""
    kind, node = scope.producer(ref)
    if kind != "node" or depth > 16:
        return False
    inputs = _data_inputs(node)
    if node.op in _PASS_THROUGH:
        return bool(inputs) and _safe_suffix(scope, inputs[0], depth + 1)
    if node.op in ("Select", "SelectV2"):
        return len(inputs) == 3 and all(
            _safe_suffix(scope, i, depth + 1) for i in inputs[1:]
        )
    if node.op != "Const":
        return False
    values = node.attr["value"].tensor.string_val
    return bool(values) and all(b".." not in v for v in values)


def _plain_asset(path, filename):
    """A relative name that stays inside `path`/assets/, links resolved."""
    if not filename or "\x00" in filename:
        return False
    for flavour in (posixpath, ntpath):
        if flavour.isabs(filename) or ntpath.splitdrive(filename)[0]:
            return False
        if ".." in flavour.normpath(filename).split(flavour.sep):
            return False
    if ".." in filename.replace("\\", "/").split("/"):
        return False
    if "://" in path:
        return True  # remote file systems have no links
    root = os.path.realpath(os.path.join(path, "assets"))
    if root != os.path.join(os.path.realpath(path), "assets"):
        return False  # assets/ itself is a link
    target = os.path.realpath(os.path.join(root, filename))
    return target.startswith(root + os.sep)


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
