"""The allowlist, checked against the op registry of the installed TF."""

import importlib.util
import re

import pytest

from keras_hubkit import _compat
from keras_hubkit import _safe_ops

# Words in an input or attr name that say "this names a file, a place in a
# file system, or a network address".
_FILE_WORDS = {
    "file",
    "files",
    "filename",
    "filenames",
    "filepath",
    "path",
    "pattern",
    "patterns",
    "prefix",
    "prefixes",
    "url",
    "urls",
    "uri",
    "dir",
    "directory",
    "logdir",
    "vocab",
    "descriptor",
    "address",
    "db",
    "ckpt",
    "checkpoint",
    "filesystem",
}
_FILE_NAMES = {"memory_region_name", "descriptor_source", "db_uri"}
_FILE_DOCS = re.compile(
    r"\bfiles?\b|\bfile ?names?\b|\bfile ?system\b|\bURLs?\b"
    r"|\bdirector(y|ies)\b|\bcheckpoints?\b",
    re.IGNORECASE,
)

# Op types of each hostile class in issue 13: none may ever be listed.
_NEVER = [
    # Files named in an input.
    "ReadFile",
    "WriteFile",
    "MatchingFiles",
    "SaveV2",
    "RestoreV2",
    "MergeV2Checkpoints",
    "Save",
    "Restore",
    "RestoreSlice",
    # Queue-based readers: the file name arrives through a queue.
    "WholeFileReaderV2",
    "TextLineReaderV2",
    "TFRecordReaderV2",
    "FixedLengthRecordReaderV2",
    "IdentityReaderV2",
    "LMDBReader",
    "ReaderReadV2",
    "ReaderReadUpToV2",
    "FIFOQueueV2",
    "QueueEnqueueV2",
    # Datasets that cache, list, read or write files.
    "CacheDataset",
    "CacheDatasetV2",
    "MatchingFilesDataset",
    "TFRecordDataset",
    "TFRecordDatasetV2",
    "TextLineDataset",
    "FixedLengthRecordDatasetV2",
    "CSVDatasetV2",
    "SnapshotDatasetV2",
    "SaveDatasetV2",
    "LoadDataset",
    "DatasetToTFRecord",
    # A file named in an attr.
    "ImmutableConst",
    "DecodeProtoV2",  # structural: only 'local://' or 'bytes://' sources
    "EncodeProto",
    "FixedUnigramCandidateSampler",
    "Skipgram",
    # A graph carried as data, rebuilt at run time.
    "DatasetFromGraph",
    "DeserializeIterator",
    "IteratorFromStringHandleV2",
    # Python, network, debug and summary sinks, file-backed tables.
    "PyFunc",
    "PyFuncStateless",
    "EagerPyFunc",
    "RpcCall",
    "DebugIdentityV2",
    "PrintV2",
    "CreateSummaryFileWriter",
    "WriteSummary",
    "InitializeTableFromTextFileV2",
    "InitializeTableFromTextFile",
    "LoadAndRemapMatrix",
    "GenerateVocabRemapping",
]


@pytest.fixture(scope="module")
def registry():
    return _compat.registered_op_defs()


def _takes_a_file(op_def):
    names = [a.name for a in op_def.input_arg] + [a.name for a in op_def.attr]
    for name in names:
        words = set(name.lower().split("_"))
        if words & _FILE_WORDS or name in _FILE_NAMES:
            return f"{name!r}"
    match = _FILE_DOCS.search(f"{op_def.summary} {op_def.description}")
    return f"its doc ({match.group(0)!r})" if match else None


def test_every_listed_op_exists(registry):
    missing = sorted(_safe_ops.SAFE_OPS - set(registry))
    assert not missing, f"listed but not registered: {missing}"
    assert set(_safe_ops.STRUCTURAL) <= set(registry)


def test_no_listed_op_takes_a_file_name(registry):
    flagged = {
        op: why
        for op in _safe_ops.SAFE_OPS
        if (why := _takes_a_file(registry[op]))
        and op not in _safe_ops.NOT_FILE_NAMES
    }
    assert not flagged, f"listed ops that look like they open files: {flagged}"
    # The heuristic finds the file ops it is meant to find.
    for op in ("ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst"):
        assert _takes_a_file(registry[op]), op
    for op in (
        "DecodeProtoV2",
        "CacheDatasetV2",
        "FixedUnigramCandidateSampler",
    ):
        assert _takes_a_file(registry[op]), op


def test_every_file_taking_op_is_off_the_list(registry):
    on_list = sorted(
        op
        for op, op_def in registry.items()
        if _takes_a_file(op_def)
        and op in _safe_ops.SAFE_OPS
        and op not in _safe_ops.NOT_FILE_NAMES
    )
    assert on_list == []
    # Each reviewed exception is a listed op, with its reason.
    for op, reason in _safe_ops.NOT_FILE_NAMES.items():
        listed = _safe_ops.SAFE_OPS | _safe_ops.EXTENSION_OPS
        assert op in listed and reason


def test_hostile_classes_are_never_listed(registry):
    for op in _NEVER:
        assert op in registry, op
    assert not set(_NEVER) & (_safe_ops.SAFE_OPS | _safe_ops.EXTENSION_OPS)
    # Readers take the file name from a queue: nothing that reads from a
    # reader handle is listed.
    readers = {
        op
        for op, op_def in registry.items()
        if any(a.name == "reader_handle" for a in op_def.input_arg)
    }
    assert readers and not readers & _safe_ops.SAFE_OPS
    # Internal ops (send/receive across devices or hosts, XLA launches)
    # are not listed.
    assert not [op for op in _safe_ops.SAFE_OPS if op.startswith("_")]


def test_families_are_reviewed_data():
    seen = set()
    for name, family in {
        **_safe_ops.FAMILIES,
        **_safe_ops.EXTENSION_FAMILIES,
    }.items():
        assert len(family.reason) > 40, name
        assert list(family.ops) == sorted(set(family.ops)), name
        assert not seen & set(family.ops), name
        seen |= set(family.ops)
    assert _safe_ops.family_of("MatMul") == "math_array"
    assert _safe_ops.family_of("WriteFile") is None
    assert not set(_safe_ops.STRUCTURAL) & _safe_ops.SAFE_OPS


def test_extension_ops_belong_to_their_package(registry):
    for family in _safe_ops.EXTENSION_FAMILIES.values():
        assert not set(family.ops) & _safe_ops.SAFE_OPS
        for op in family.ops:
            assert _safe_ops.package_for(op) == family.package
        if importlib.util.find_spec(family.module) is not None:
            importlib.import_module(family.module)
            now = _compat.registered_op_defs()
            assert set(family.ops) <= set(now), family.package
            flagged = {
                op: why
                for op in family.ops
                if (why := _takes_a_file(now[op]))
                and op not in _safe_ops.NOT_FILE_NAMES
            }
            assert not flagged, flagged
    assert _safe_ops.package_for("TokenizerFromLogits") == "tensorflow-text"
    assert _safe_ops.package_for("MatMul") is None


def test_the_list_ships_in_the_package():
    # Data in a module of the package: setuptools puts it in the wheel with
    # the code (packages.find includes keras_hubkit*).
    spec = importlib.util.find_spec("keras_hubkit._safe_ops")
    assert spec.origin.endswith("keras_hubkit/_safe_ops.py")
