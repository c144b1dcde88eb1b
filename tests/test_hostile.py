"""Issue 13: every class of hostile model is refused before anything runs.

Each model is built with plain TensorFlow. One test proves with plain
TensorFlow that the model really writes, reads or lists its canary; the
other shows that `hk.load`, `hk.HubLayer` and `hubkit inspect` refuse it
without ever reaching `tf.saved_model.load` (so no op of it runs: no call
is possible either) and that the canary folder is untouched.
"""

import os
import subprocess
import sys

import hostile
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2

import keras_hubkit as hk
from keras_hubkit import errors
from keras_hubkit.app import cli

SECRET = "top secret\n"


@pytest.fixture(scope="session")
def lair(tmp_path_factory):
    """A folder with a secret file: what hostile models go after."""
    root = tmp_path_factory.mktemp("lair")
    (root / "secret.txt").write_text(SECRET)
    _write_descriptor(root / "evil.desc")
    return root


def _write_descriptor(path):
    files = descriptor_pb2.FileDescriptorSet()
    proto = files.file.add(name="evil.proto", package="hubkit")
    message = proto.message_type.add(name="Evil")
    message.field.add(
        name="a", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32
    )
    path.write_bytes(files.SerializeToString())


def _build(name, root, models):
    secret = str(root / "secret.txt")
    out = str(models / name)
    if name == "queue_reader":
        return hostile.save_queue_reader(out, secret)
    if name == "dataset_cache":
        return hostile.save_dataset_cache_writer(out, str(root / "cached"))
    if name == "dataset_list":
        return hostile.save_dataset_lister(out, str(root))
    if name == "dataset_map_read":
        return hostile.save_dataset_map_reader(out, secret)
    if name == "attr_descriptor":
        return hostile.save_attr_descriptor(out, str(root / "evil.desc"))
    if name == "graph_constant":
        dataset = tf.data.TextLineDataset(secret)
        graph = hostile.serialized_dataset_graph(dataset)
        return hostile.save_graph_as_constant(out, graph)
    if name == "graph_variable":
        dataset = tf.data.TextLineDataset(secret)
        graph = hostile.serialized_dataset_graph(dataset)
        return hostile.save_graph_in_variable(out, graph)
    if name == "named_like_saver":
        return hostile.save_named_like_saver(out, str(root / "saved"))
    if name.startswith("asset_"):
        hostile.save_asset_table(out)
        if name == "asset_absolute":
            return hostile.edit_asset_filename(out, secret)
        if name == "asset_unused":
            return hostile.add_unused_asset(out, secret)
        if name == "asset_dotdot":
            return hostile.edit_asset_filename(out, "../../../lair0/secret.txt")
        os.remove(f"{out}/assets/vocab.txt")
        os.symlink(secret, f"{out}/assets/vocab.txt")
        return out
    if name == "dataset_table":
        return hostile.save_dataset_table(out, secret)
    if name == "shadowing_meta_graph":
        hostile.save_call_reads_file(out, secret)
        return hostile.add_shadowing_meta_graph(out)
    raise AssertionError(name)


# name -> op types the scan must refuse (for `tags`, the MetaGraph to load).
CASES = {
    "queue_reader": {"WholeFileReaderV2", "ReaderReadV2"},
    "dataset_cache": {"CacheDatasetV2"},
    "dataset_list": {"MatchingFiles"},
    "dataset_map_read": {"ReadFile"},
    "attr_descriptor": {"DecodeProtoV2"},
    "graph_constant": {"TextLineDataset"},
    "graph_variable": {"DatasetFromGraph"},
    "named_like_saver": {"SaveV2"},
    "asset_absolute": {"InitializeTableFromTextFileV2", "Asset"},
    "asset_dotdot": {"InitializeTableFromTextFileV2", "Asset"},
    "asset_symlink": {"InitializeTableFromTextFileV2", "Asset"},
    "asset_unused": {"Asset"},
    "dataset_table": {"InitializeTableFromTextFileV2"},
    "shadowing_meta_graph": {"ReadFile"},
}
_TAGS = {"shadowing_meta_graph": ["serve"]}


@pytest.fixture(scope="session")
def hostile_models(lair, tmp_path_factory):
    models = tmp_path_factory.mktemp("hostile_models")
    # The '..' case climbs from <models>/asset_dotdot/assets to the lair.
    assert lair.name == "lair0" and models.parent == lair.parent
    return {name: _build(name, lair, models) for name in CASES}


def _snapshot(folder):
    return sorted(
        (p, os.lstat(os.path.join(folder, p)).st_mtime_ns)
        for p in os.listdir(folder)
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_before_anything_runs(
    name, hostile_models, lair, monkeypatch, capsys
):
    path = hostile_models[name]
    tags = _TAGS.get(name)
    before = _snapshot(lair)

    def no_load(*args, **kwargs):
        raise AssertionError("tf.saved_model.load was reached")

    monkeypatch.setattr(tf.saved_model, "load", no_load)
    report = hk.scan(path, tags=tags)
    assert CASES[name] <= {f.op for f in report.findings}
    assert not report.safe
    with pytest.raises(errors.UnsafeModelError) as info:
        hk.load(path, tags=tags)
    message = str(info.value)
    assert "allow_ops=" in message and report.fingerprint in message
    assert any(op in message for op in CASES[name])
    with pytest.raises(errors.UnsafeModelError):
        hk.HubLayer(path, tags=tags)
    assert cli.main(["inspect", path]) == 2
    capsys.readouterr()
    assert _snapshot(lair) == before


def test_load_time_attacks_say_so(hostile_models):
    for name in ("asset_absolute", "asset_dotdot", "asset_symlink"):
        asset, finding = sorted(
            hk.scan(hostile_models[name]).findings, key=lambda f: f.op
        )
        assert asset.op == "Asset" and asset.runs_at_load, name
        assert finding.runs_at_load, name
        assert "RUNS AT LOAD TIME" in str(finding)
        assert "asset file names refused" in finding.reason, name
    (finding,) = [
        f
        for f in hk.scan(hostile_models["dataset_map_read"]).findings
        if f.op == "ReadFile"
    ]
    assert not finding.runs_at_load
    assert "obj.__call__" in finding.entry_points
    assert "runs on the call path" in str(finding)


def _call(path, **kwargs):
    return tf.saved_model.load(path, **kwargs)(tf.constant([1.0])).numpy()


def test_plain_tensorflow_proves_each_model_hostile(
    hostile_models, lair, tmp_path
):
    """The same models, loaded without the gate, do what they are for."""
    secret = len(SECRET)
    assert _call(hostile_models["queue_reader"]) == [1 + secret]
    assert _call(hostile_models["dataset_map_read"]) == [1 + secret]
    # 1 + the secret's line without its newline.
    assert _call(hostile_models["graph_variable"]) == [secret]
    listed = len(os.listdir(lair))
    assert _call(hostile_models["dataset_list"]) == [1 + listed]
    _call(hostile_models["dataset_cache"])
    assert os.path.exists(lair / "cached.index")
    _call(hostile_models["named_like_saver"])
    assert os.path.exists(lair / "saved.index")
    for name in ("asset_absolute", "asset_dotdot", "asset_symlink"):
        table = tf.saved_model.load(hostile_models[name])
        ids = table(tf.constant(["top secret", "hello"])).numpy()
        assert list(ids) == [0, -1], name  # its vocabulary is the secret
    # An asset no op reads: re-exporting the model copies the secret.
    loaded = tf.saved_model.load(hostile_models["asset_unused"])
    tf.saved_model.save(loaded, str(tmp_path / "export"))
    assert (tmp_path / "export" / "assets" / "secret.txt").read_text() == SECRET
    _call(hostile_models["attr_descriptor"])  # reads the descriptor file
    os.rename(lair / "evil.desc", lair / "moved.desc")
    try:
        with pytest.raises(tf.errors.InvalidArgumentError):
            _call(hostile_models["attr_descriptor"])
    finally:
        os.rename(lair / "moved.desc", lair / "evil.desc")
    signature = tf.saved_model.load(
        hostile_models["shadowing_meta_graph"], tags=["serve"]
    ).signatures["serving_default"]
    (out,) = signature(x=tf.constant([1.0])).values()
    assert out.numpy() == [1 + secret]
    for name in ("cached", "saved"):
        for leftover in lair.glob(f"{name}*"):
            os.remove(leftover)


def test_embedded_graph_is_decoded_and_scanned(hostile_models, tmp_path):
    report = hk.scan(hostile_models["graph_constant"])
    (finding,) = report.findings
    assert finding.op == "TextLineDataset"
    assert "graph in node" in finding.function
    # The same construction with an in-memory dataset passes.
    graph = hostile.serialized_dataset_graph(
        tf.data.Dataset.from_tensor_slices(["a", "b"])
    )
    clean = hk.scan(hostile.save_graph_as_constant(str(tmp_path / "m"), graph))
    assert clean.safe
    assert clean.op_counts["TensorSliceDataset"] >= 1
    # A graph that is not a constant cannot be decoded: refused.
    (finding,) = hk.scan(
        hostile.save_graph_from_input(str(tmp_path / "input"))
    ).findings
    assert finding.op == "DatasetFromGraph"
    assert "not a constant" in finding.reason


def test_only_the_meta_graph_that_loads_is_scanned(hostile_models):
    path = hostile_models["shadowing_meta_graph"]
    with pytest.raises(errors.HandleError, match="2 MetaGraphs"):
        hk.load(path)
    assert {f.op for f in hk.scan(path, tags=["serve"]).findings} == {
        "ReadFile"
    }
    # The clean copy is scanned on its own, not merged with the other.
    train = hk.scan(path, tags=["train"])
    assert train.safe and train.tags == ("train",)
    with pytest.raises(errors.HandleError, match="tags"):
        hk.scan(path, tags=["gpu"])


def test_swapped_file_with_same_size_and_mtime_is_scanned_again(tmp_path):
    secret = str(tmp_path / "secret.txt")
    path = hostile.save_call_reads_file(str(tmp_path / "m"), secret)
    pb = os.path.join(path, "saved_model.pb")
    with open(pb, "rb") as f:
        hostile_bytes = f.read()
    hostile.swap_op_keeping_size(path, "ReadFile", "Identity")
    stat = os.stat(pb)
    assert hk.scan(path).safe  # the harmless twin, now in the memo
    with open(pb, "wb") as f:
        f.write(hostile_bytes)
    os.utime(pb, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    swapped = os.stat(pb)
    assert (swapped.st_size, swapped.st_mtime_ns) == (
        stat.st_size,
        stat.st_mtime_ns,
    )
    with pytest.raises(errors.UnsafeModelError, match="ReadFile"):
        hk.load(path)


@pytest.mark.slow
def test_inspect_in_a_subprocess_refuses(hostile_models, lair):
    """`python -m keras_hubkit inspect` (the real CLI) refuses too."""
    before = _snapshot(lair)
    root = os.path.dirname(os.path.dirname(os.path.abspath(hk.__file__)))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_hubkit",
            "inspect",
            hostile_models["asset_absolute"],
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 2
    assert "InitializeTableFromTextFileV2" in result.stdout
    assert "Not loaded" in result.stdout
    assert _snapshot(lair) == before
