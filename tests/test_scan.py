"""The safety gate: ops off the allowlist refuse the load before it runs."""

import errno
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import hostile
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import _compat
from keras_hubkit import errors
from keras_hubkit.app import cli


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="session")
def load_time_writer(hostile_dir):
    canary = str(hostile_dir / "canary.txt")
    path = hostile.save_load_time_writer(str(hostile_dir / "writer"), canary)
    return path, canary


def test_load_time_writer_is_refused_before_it_runs(load_time_writer):
    path, canary = load_time_writer
    report = hk.scan(path)
    assert [f.op for f in report.findings] == ["WriteFile"]
    assert report.findings[0].runs_at_load
    assert "obj.resource._initialize" in report.findings[0].entry_points
    with pytest.raises(errors.UnsafeModelError, match="WriteFile") as info:
        hk.load(path)
    assert "allow_ops=['WriteFile']" in str(info.value)
    with pytest.raises(PermissionError):
        hk.HubLayer(path)
    assert not os.path.exists(canary)
    # Proof that the model is hostile: loading alone writes the canary.
    tf.saved_model.load(path)
    assert os.path.exists(canary)
    os.remove(canary)


def test_graph_swapped_after_the_scan_is_not_loaded(
    mul_model, tmp_path, monkeypatch
):
    # saved_model.pb replaced between the scan and TensorFlow's own read of
    # it (a race another user with write access could win): TensorFlow must
    # load the graph that was scanned.
    canary = str(tmp_path / "canary.txt")
    writer = hostile.save_load_time_writer(str(tmp_path / "writer"), canary)
    path = tmp_path / "model"
    shutil.copytree(mul_model, path)
    real_load = tf.saved_model.load

    def swap_then_load(export_dir, *args, **kwargs):
        shutil.copy(os.path.join(writer, "saved_model.pb"), path)
        return real_load(export_dir, *args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "load", swap_then_load)
    obj = hk.load(str(path))
    assert not os.path.exists(canary)
    np.testing.assert_allclose(obj(tf.constant([3.0])), [6.0])
    monkeypatch.undo()
    with pytest.raises(errors.UnsafeModelError, match="WriteFile"):
        hk.load(str(path))  # the swapped folder itself is refused


@pytest.fixture
def copies(monkeypatch):
    """The private folders hk.load makes, as it makes them."""
    made = []
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return made


def test_a_changed_private_copy_is_made_again(mul_model, tmp_path, copies):
    # A temp cleaner removed the copy's graph, or someone put another one
    # there: the next load makes a fresh copy and never loads theirs.
    canary = str(tmp_path / "canary.txt")
    writer = hostile.save_load_time_writer(str(tmp_path / "writer"), canary)
    path = str(shutil.copytree(mul_model, tmp_path / "model"))
    hk.load(path)
    (first,) = copies
    os.remove(os.path.join(first, "saved_model.pb"))
    np.testing.assert_allclose(hk.load(path)(tf.constant([3.0])), [6.0])
    assert len(copies) == 2
    shutil.copy(os.path.join(writer, "saved_model.pb"), copies[-1])
    np.testing.assert_allclose(hk.load(path)(tf.constant([3.0])), [6.0])
    assert len(copies) == 3
    assert not os.path.exists(canary)


@pytest.fixture
def text_copy(text_model, tmp_path):
    """A copy of the text model, its vocabulary file, and a secret."""
    path = shutil.copytree(text_model, tmp_path / "model")
    (vocab,) = (path / "assets").iterdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET\n")
    return str(path), vocab, secret


def _swap_after_the_scan(monkeypatch, file, link):
    """Makes `file` (or folder) a link to `link` once hk.load's scan has
    passed."""
    import keras_hubkit.loading

    real_check = keras_hubkit.loading.check_scan

    def check_then_swap(*args, **kwargs):
        real_check(*args, **kwargs)
        if file.is_dir():
            shutil.rmtree(file)
        else:
            file.unlink()
        file.symlink_to(link)

    monkeypatch.setattr(keras_hubkit.loading, "check_scan", check_then_swap)


def test_asset_swapped_for_a_link_after_the_scan_is_refused(
    text_copy, monkeypatch
):
    path, vocab, secret = text_copy
    _swap_after_the_scan(monkeypatch, vocab, secret)
    with pytest.raises(errors.UnsafeModelError, match="is a link"):
        hk.load(path)


def test_asset_link_through_a_link_and_up_is_refused(text_copy, monkeypatch):
    # `sub/up -> ..` is harmless, but a path through it and then `..`
    # climbs out of wherever it led: `sub/up/..` is the copy's top folder,
    # though its text (`sub/up/../assets/...`) looks inside assets/.
    path, vocab, secret = text_copy
    (vocab.parent / "sub").mkdir()
    (vocab.parent / "sub" / "up").symlink_to("..")
    escape = "sub/up/../assets/" * 20 + "sub/up/.." + "/.." * 30 + str(secret)
    _swap_after_the_scan(monkeypatch, vocab, escape)
    with pytest.raises(errors.UnsafeModelError, match="is a link"):
        hk.load(path)


def test_asset_links_inside_assets_are_kept(text_copy):
    path, vocab, _ = text_copy
    words = vocab.read_text()
    (vocab.parent / "sub").mkdir()
    vocab.rename(vocab.parent / "sub" / "words.txt")
    (vocab.parent / "sub" / "up").symlink_to("..")
    (vocab.parent / "sub" / "again").symlink_to("../sub/words.txt")
    vocab.symlink_to("sub/up/sub/again")
    obj = hk.load(path)
    assert obj.vocab_file.asset_path.numpy().decode().endswith(vocab.name)
    with open(obj.vocab_file.asset_path.numpy(), encoding="utf8") as f:
        assert f.read() == words


def test_assets_folder_swapped_for_a_link_after_the_scan_is_refused(
    text_copy, monkeypatch
):
    # Even to a folder inside the model (the scan refuses such a link): a
    # link's way could change between a check and the walk.
    path, vocab, _ = text_copy
    assets = vocab.parent
    inner = assets.parent / "inner"
    shutil.copytree(assets, inner)
    _swap_after_the_scan(monkeypatch, assets, "inner")
    with pytest.raises(errors.UnsafeModelError, match="assets is a link"):
        hk.load(path)


def test_missing_asset_is_a_typed_error(text_copy):
    path, vocab, _ = text_copy
    vocab.unlink()
    with pytest.raises(errors.HandleError, match="Could not load"):
        hk.load(path)


def test_assets_swapped_after_the_load_stay_out_of_an_export(
    text_copy, tmp_path
):
    path, vocab, secret = text_copy
    words = vocab.read_text()
    obj = hk.load(path)
    vocab.unlink()
    vocab.symlink_to(secret)
    out = tmp_path / "export"
    hk.export_saved_model(obj, str(out))
    (exported,) = (out / "assets").iterdir()
    assert not exported.is_symlink()
    assert exported.read_text() == words


def test_load_where_no_links_can_be_made_is_in_place(
    mul_model, tmp_path, monkeypatch
):
    # Where this system makes no links (Windows without developer mode, a
    # filesystem without them), the folder is loaded in place.
    path = shutil.copytree(mul_model, tmp_path / "model")
    tried = []

    def no_links(*args):
        tried.append(args)
        raise OSError(errno.EPERM, "links are not supported here")

    monkeypatch.setattr(os, "symlink", no_links)
    obj = hk.load(str(path))
    assert tried
    np.testing.assert_allclose(obj(tf.constant([3.0])), [6.0])


def test_a_copy_that_cannot_be_made_refuses_the_load(
    mul_model, tmp_path, monkeypatch
):
    # Any other failure (a name too long, a full disk) is an error: loading
    # the folder in place would let a swapped graph through.
    path = shutil.copytree(mul_model, tmp_path / "model")

    def too_long(*args):
        raise OSError(errno.ENAMETOOLONG, "File name too long")

    monkeypatch.setattr(os, "symlink", too_long)
    loaded = []
    monkeypatch.setattr(
        tf.saved_model, "load", lambda *a, **k: loaded.append(a)
    )
    with pytest.raises(errors.CacheError, match="private copy") as info:
        hk.load(str(path))
    assert isinstance(info.value, OSError)
    assert "TMPDIR" in str(info.value)
    assert loaded == []


@pytest.mark.parametrize(
    "build", [hostile.save_call_reads_file, hostile.save_gradient_reads_file]
)
def test_call_path_that_reads_a_file(hostile_dir, build):
    # The read is in `__call__` itself, or in a custom gradient of it.
    path = build(str(hostile_dir / build.__name__), "/etc/hostname")
    report = hk.scan(path)
    (finding,) = report.findings
    assert finding.op == "ReadFile"
    is_gradient = build is hostile.save_gradient_reads_file
    assert ("grad_fn" in finding.function) == is_gradient
    assert not finding.runs_at_load
    assert "obj.__call__" in finding.entry_points
    assert "signature serving_default" in finding.entry_points
    with pytest.raises(errors.UnsafeModelError, match="ReadFile"):
        hk.HubLayer(path)


@pytest.mark.parametrize("op_type", ["CustomGradient-2", "renamed", None])
def test_gradient_called_by_the_saver_gets_no_saver_exemption(
    hostile_dir, op_type
):
    # TensorFlow finds a gradient by the name its loader made (predictable)
    # or by another model's op: being called by the saver proves nothing.
    path = hostile.save_gradient_called_by_saver(
        str(hostile_dir / f"gradient-saver-{op_type}"), "/canary", op_type
    )
    report = hk.scan(path)
    assert not report.safe
    flagged = {(f.op, f.function) for f in report.findings}
    assert {op for op, _ in flagged} == {"SaveV2"}
    assert all("grad_fn" in function for _, function in flagged)
    with pytest.raises(errors.UnsafeModelError, match="SaveV2"):
        hk.load(path)


def test_py_function_is_refused(hostile_dir):
    path = hostile.save_py_function(str(hostile_dir / "pyfunc"))
    with pytest.raises(errors.UnsafeModelError, match="EagerPyFunc"):
        hk.load(path)


def test_table_reading_a_file_outside_assets(hostile_dir):
    path = hostile.save_foreign_table(
        str(hostile_dir / "table"), "/etc/hostname"
    )
    (finding,) = hk.scan(path).findings
    assert finding.op == "InitializeTableFromTextFileV2"
    assert "not provably one of the model's own assets" in finding.reason
    assert finding.runs_at_load


def test_table_from_own_assets_passes(text_model):
    report = hk.scan(text_model)
    assert report.op_counts["InitializeTableFromTextFileV2"] == 1
    assert report.safe


def test_unregistered_op_is_reported_by_name(mul_model, tmp_path):
    import shutil

    path = str(tmp_path / "renamed")
    shutil.copytree(mul_model, path)
    hostile.rename_op(path, "Mul", "EvilCustomOp")
    assert hk.scan(path).unregistered_ops == ("EvilCustomOp",)
    with pytest.raises(errors.HandleError, match="EvilCustomOp"):
        hk.load(path)


def test_opt_in_per_call_is_logged(load_time_writer, caplog):
    path, canary = load_time_writer
    with caplog.at_level(logging.WARNING, logger="keras_hubkit"):
        obj = hk.load(path, allow_ops=["WriteFile"])
    assert "WriteFile" in caplog.text
    np.testing.assert_allclose(obj(tf.constant([2.0])), [2.0])
    assert os.path.exists(canary)
    os.remove(canary)
    with pytest.raises(errors.UnsafeModelError):
        hk.load(path, allow_ops=["ReadFile"])  # narrow: other ops only


def test_trusted_fingerprint(load_time_writer, monkeypatch, caplog):
    path, canary = load_time_writer
    fingerprint = hk.scan(path).fingerprint
    with caplog.at_level(logging.WARNING, logger="keras_hubkit"):
        hk.load(path, trusted_fingerprints=[fingerprint])
    assert "trusted" in caplog.text
    os.remove(canary)
    monkeypatch.setenv("HUBKIT_TRUSTED_FINGERPRINTS", f"x,{fingerprint}")
    hk.load(path)
    os.remove(canary)


def test_hub_layer_allow_ops_round_trips(load_time_writer):
    path, canary = load_time_writer
    layer = hk.HubLayer(path, allow_ops=["WriteFile"])
    assert layer.get_config()["allow_ops"] == ["WriteFile"]
    os.remove(canary)


@pytest.mark.parametrize(
    "fixture",
    [
        "mul_model",
        "text_model",
        "image_model",
        "signature_model",
        "bert_model",
        "tf1_model",
    ],
)
def test_ordinary_models_pass(fixture, request):
    assert hk.scan(request.getfixturevalue(fixture)).safe


@pytest.mark.parametrize(
    "name",
    [
        "mobilenet_v3_small_075_224_feature_vector_5",
        "arm_openmv_gesture_mobilenet_025_keras",
        "teachable_machine_mobilenet_v2_035_tf1",
        "tf_text_segmenter_hub_module",
    ],
)
def test_real_models_raise_no_false_alarm(real_models, name):
    report = hk.scan(str(real_models / name))
    assert report.findings == ()
    expected = ("TokenizerFromLogits",) if "segmenter" in name else ()
    assert report.unregistered_ops == expected
    assert report.safe == (not expected)
    if not expected:
        # The saver's own checkpoint I/O is accepted by structure.
        assert any("RestoreV2" in e for e in report.exemptions)


def test_keras2_export_passes(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.export(str(tmp_path / "exported"), verbose=False)
    assert hk.scan(str(tmp_path / "exported")).safe


def test_inspect_prints_report_signatures_and_variables(image_model, capsys):
    assert cli.main(["inspect", image_model]) == 0
    out = capsys.readouterr().out
    assert "no risky ops" in out
    assert "__call__ traces" in out and "float32[None, 8, 8, 3]" in out
    assert "variables: 6" in out and "trainable_variables: 4" in out
    assert "regularization_losses: 1" in out


def test_inspect_shows_refusal(load_time_writer, capsys):
    path, canary = load_time_writer
    assert cli.main(["inspect", path]) == 2
    out = capsys.readouterr().out
    assert "RUNS AT LOAD TIME" in out and "Not loaded" in out
    assert not os.path.exists(canary)


def test_unlistable_assets_are_scanned_every_time(
    mul_model, tmp_path, monkeypatch
):
    # A folder under assets/ that this user cannot list (another user's,
    # mode 0711) can have its files swapped unseen: no report is reused.
    import shutil

    from keras_hubkit.scanner import scan_path

    path = tmp_path / "m"
    shutil.copytree(mul_model, path)
    (path / "assets" / "d").mkdir(parents=True)
    (path / "assets" / "d" / "vocab.txt").write_text("hello\n")
    first = scan_path(str(path))
    assert scan_path(str(path)) is first
    listed = os.scandir

    def scandir(folder="."):
        if os.fspath(folder).endswith(os.sep + "d"):
            raise PermissionError(13, "Permission denied", folder)
        return listed(folder)

    monkeypatch.setattr(os, "scandir", scandir)
    unlistable = scan_path(str(path))
    assert unlistable.safe and unlistable is not first
    assert scan_path(str(path)) is not unlistable


def test_reports_are_reused_while_the_file_is_unchanged(mul_model, tmp_path):
    import shutil

    from keras_hubkit.scanner import scan_path

    path = str(tmp_path / "m")
    shutil.copytree(mul_model, path)
    first = scan_path(path)
    assert scan_path(path) is first
    hostile.rename_op(path, "Mul", "EvilCustomOp")  # rewrites the file
    assert scan_path(path).unregistered_ops == ("EvilCustomOp",)


def test_saver_is_exempt_by_structure_only(mul_model, tmp_path):
    report = hk.scan(mul_model)
    assert report.safe and report.op_counts["SaveV2"] == 1
    # Same functions, same names, but saver_def no longer registers them.
    path = str(tmp_path / "unregistered")
    shutil.copytree(mul_model, path)
    hostile.unregister_saver(path)
    assert {f.op for f in hk.scan(path).findings} == {
        "SaveV2",
        "RestoreV2",
        "MergeV2Checkpoints",
    }
    # The registered saver, writing outside its checkpoint prefix.
    path = str(tmp_path / "escaping")
    shutil.copytree(mul_model, path)
    hostile.redirect_saver_suffix(path, "/../../../tmp/evil")
    assert {f.op for f in hk.scan(path).findings} == {
        "SaveV2",
        "MergeV2Checkpoints",
    }


def test_missing_custom_op_names_the_package(real_models):
    path = str(real_models / "tf_text_segmenter_hub_module")
    report = hk.scan(path)
    assert report.missing_packages == ("tensorflow-text",)
    with pytest.raises(errors.CustomOpError) as info:
        hk.load(path)
    message = str(info.value)
    assert "TokenizerFromLogits" in message
    assert "pip install tensorflow-text" in message
    assert "import tensorflow_text" in message
    assert not isinstance(info.value, errors.UnsafeModelError)
    assert isinstance(info.value, errors.HandleError)  # as before


def test_custom_op_registered_later_is_picked_up(real_models, monkeypatch):
    """The scan memo is not a cache of the failure (issue 14, point 3).

    `import tensorflow_text` registers TokenizerFromLogits; this stands in
    for it at the registry boundary (tensorflow-text is not a test
    dependency). `test_custom_op_library_loaded_later` does it for real.
    """
    path = str(real_models / "tf_text_segmenter_hub_module")
    with pytest.raises(errors.CustomOpError):
        hk.load(path)
    registered = _compat.is_op_registered
    monkeypatch.setattr(
        _compat,
        "is_op_registered",
        lambda op: op == "TokenizerFromLogits" or registered(op),
    )
    report = hk.scan(path)
    assert report.safe  # a reviewed tensorflow-text op, rescanned
    # TensorFlow itself still lacks the op here; its error is typed too.
    with pytest.raises(errors.CustomOpError, match="tensorflow-text"):
        hk.load(path)


_RETRY_SCRIPT = """
import sys
import tensorflow as tf
import keras_hubkit as hk
from keras_hubkit import errors

path, library = sys.argv[1:]
try:
    hk.load(path, allow_ops=["HubkitTestDouble"])
    sys.exit("loaded before the op was registered")
except errors.CustomOpError as e:
    assert "HubkitTestDouble" in str(e), e
tf.load_op_library(library)  # what importing a custom-op package does
try:
    hk.load(path)
    sys.exit("a custom op passed without review")
except errors.UnsafeModelError as e:
    assert "allow_ops=['HubkitTestDouble']" in str(e), e
obj = hk.load(path, allow_ops=["HubkitTestDouble"])
print("RESULT", obj(tf.constant([1.5, -2.0])).numpy().tolist())
"""

_BUILD_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[3])
import hostile
hostile.save_custom_op_model(sys.argv[1], sys.argv[2])
"""


def _python(*args, timeout=300):
    root = str(pathlib.Path(__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def custom_op_library(tmp_path_factory):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("building a custom op needs g++")
    source = pathlib.Path(__file__).parent / "data" / "hubkit_test_op.cc"
    library = str(tmp_path_factory.mktemp("custom_op") / "hubkit_test_op.so")
    subprocess.run(
        [
            compiler,
            *("-std=c++17", "-shared", "-fPIC", "-O0"),
            *(str(source), "-o", library),
            *tf.sysconfig.get_compile_flags(),
            *tf.sysconfig.get_link_flags(),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return library


@pytest.mark.slow
def test_custom_op_library_loaded_later(custom_op_library, tmp_path):
    """A fresh interpreter: refused while the op is missing, loads once the
    library registering it is loaded, in the same process."""
    path = str(tmp_path / "custom")
    tests = str(pathlib.Path(__file__).parent)
    _python("-c", _BUILD_SCRIPT, path, custom_op_library, tests)
    out = _python("-c", _RETRY_SCRIPT, path, custom_op_library)
    assert "RESULT [3.0, -4.0]" in out


def test_op_named_by_a_function_attr_is_judged(mul_model, tmp_path):
    path = str(tmp_path / "m")
    shutil.copytree(mul_model, path)
    hostile.add_op_called_as_function(path, "ReadFile")
    (finding,) = hk.scan(path).findings
    assert finding.op == "ReadFile" and finding.node == "innocent"
    assert "function-valued attr" in finding.reason


def test_decode_proto_is_judged_by_its_descriptor_source(tmp_path):
    def save(name, source):
        def call(x):
            _, values = tf.io.decode_proto(
                tf.fill(tf.shape(x), ""),
                message_type="tensorflow.TensorShapeProto",
                field_names=["unknown_rank"],
                output_types=[tf.bool],
                descriptor_source=source,
            )
            return x + tf.cast(tf.size(values[0]), tf.float32)

        return hostile._save_call(str(tmp_path / name), call)

    assert hk.scan(save("local", "local://")).safe
    (finding,) = hk.scan(save("file", str(tmp_path / "evil.desc"))).findings
    assert finding.op == "DecodeProtoV2" and "evil.desc" in finding.reason


def test_tf1_asset_collection_is_checked(tf1_model, tmp_path):
    path = str(tmp_path / "tf1")
    shutil.copytree(tf1_model, path)
    hostile.add_tf1_collection_asset(path, "../../../etc/hostname")
    (finding,) = hk.scan(path).findings
    assert finding.op == "Asset" and finding.runs_at_load
    assert finding.node == "../../../etc/hostname"


def test_variant_constants_hold_only_tensor_containers(mul_model, tmp_path):
    for kind, safe in (
        ("tensorflow::TensorList", True),
        ("tensorflow::DatasetVariantWrapper", False),
    ):
        path = str(tmp_path / kind.split("::")[1])
        shutil.copytree(mul_model, path)
        hostile.add_variant_constant(path, kind)
        report = hk.scan(path)
        assert report.safe == safe, kind
        if not safe:
            assert "DatasetVariantWrapper" in report.findings[0].reason
