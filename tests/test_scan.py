"""The safety gate: risky ops refuse the load before anything runs."""

import logging
import os

import hostile
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
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


def test_call_that_reads_a_file(hostile_dir):
    path = hostile.save_call_reads_file(
        str(hostile_dir / "reader"), "/etc/hostname"
    )
    report = hk.scan(path)
    (finding,) = report.findings
    assert finding.op == "ReadFile"
    assert not finding.runs_at_load
    assert "obj.__call__" in finding.entry_points
    assert "signature serving_default" in finding.entry_points
    with pytest.raises(errors.UnsafeModelError, match="ReadFile"):
        hk.HubLayer(path)


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


def test_reports_are_reused_while_the_file_is_unchanged(mul_model, tmp_path):
    import shutil

    from keras_hubkit.scanner import scan_path

    path = str(tmp_path / "m")
    shutil.copytree(mul_model, path)
    first = scan_path(path)
    assert scan_path(path) is first
    hostile.rename_op(path, "Mul", "EvilCustomOp")  # rewrites the file
    assert scan_path(path).unregistered_ops == ("EvilCustomOp",)
