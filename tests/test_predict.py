"""A classifier that serves: `hubkit train` writes a SavedModel whose
signatures decode, resize and scale by themselves; `hubkit predict` prints
its top classes. Run the way a user runs them: `python -m keras_hubkit`."""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import serving

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLORS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def hubkit(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "keras_hubkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def _write_jpegs(folder):
    """JPEGs of several sizes, none the model's 8x8."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, color in COLORS.items():
        os.makedirs(folder / name)
        for i in range(6):
            shape = (16 + i, 20 - i, 3)
            noise = rng.integers(-20, 20, shape)
            pixels = np.clip(np.array(color) + noise, 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / name / f"{i}.jpg", "JPEG")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, image_model):
    """`hubkit train` on JPEGs of other sizes than the model's."""
    root = tmp_path_factory.mktemp("served")
    data = _write_jpegs(root / "data")
    out = root / "run"
    result = hubkit(
        "train",
        "--data",
        data,
        "--handle",
        image_model,
        "--output",
        out,
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--augment",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Test accuracy" in result.stdout
    return data, out


@pytest.mark.slow
def test_predict_prints_top_classes(trained, tmp_path):
    data, out = trained
    files = [data / "red" / "0.jpg", data / "blue" / "5.jpg"]
    result = hubkit("predict", out, *files, "--json", "--top", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = json.loads(result.stdout)["predictions"]
    assert [p["file"] for p in predictions] == [str(f) for f in files]
    for p in predictions:
        assert {c["class"] for c in p["top"]} == set(COLORS)
        scores = [c["score"] for c in p["top"]]
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0, abs=1e-4)

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    result = hubkit("predict", out, files[0], broken)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    ours = [x for x in result.stderr.splitlines() if x.startswith("hubkit")]
    assert ours == result.stderr.strip().splitlines()[-1:], result.stderr
    assert re.match(r"hubkit predict: DataError: .*broken\.jpg", ours[0])


@pytest.mark.slow
def test_predict_plain_output_and_missing_files(trained, tmp_path, capsys):
    from keras_hubkit.app import cli

    data, out = trained
    file = data / "red" / "0.jpg"
    assert cli.main(["predict", str(out / "saved_model"), str(file)]) == 0
    assert re.match(
        rf"{re.escape(str(file))}: (red|blue) \d\.\d{{3}}, ",
        (capsys.readouterr().out),
    )
    missing = str(tmp_path / "missing.jpg")
    assert cli.main(["predict", str(out), missing]) == 2
    assert "HandleNotFoundError" in capsys.readouterr().err


@pytest.mark.slow
def test_signatures_agree_with_the_reusable_model(trained):
    data, out = trained
    saved = str(out / "saved_model")
    obj = hk.load(saved)
    files = sorted(data.rglob("*.jpg"))[:4]
    encoded = tf.constant([f.read_bytes() for f in files])
    from_bytes = obj.signatures["serving_default"](image_bytes=encoded)

    decoded = [tf.io.decode_jpeg(f.read_bytes()) for f in files]
    floats = tf.stack([serving.scale_images(d, (8, 8)) for d in decoded])
    # The reusable `__call__` (float pixels in [0, 1] at the model's size)
    # still works, for HubLayer and fine-tuning.
    reusable = hk.HubLayer(saved)(floats)
    np.testing.assert_allclose(
        from_bytes["probabilities"], reusable, rtol=1e-4, atol=1e-6
    )
    # One uint8 image, any size: the same answer as its JPEG bytes.
    from_pixels = obj.signatures["serving_images"](images=decoded[0][None])
    np.testing.assert_allclose(
        from_pixels["probabilities"][0],
        from_bytes["probabilities"][0],
        rtol=1e-4,
        atol=1e-6,
    )
    best = np.argmax(from_bytes["probabilities"], axis=1)
    names = np.array([n.encode() for n in sorted(COLORS)])
    assert list(from_bytes["classes"][:, 0].numpy()) == list(names[best])
    assert (out / "saved_model" / "labels.txt").read_text().split() == sorted(
        COLORS
    )


def test_text_classifier_serves_raw_strings(text_model, tmp_path):
    model = hk.text_classifier(text_model, 2)
    probabilities = keras.Model(
        model.input, keras.layers.Softmax()(model.output)
    )
    path = hk.export_saved_model(
        probabilities,
        tmp_path / "text",
        signatures=serving.classifier_signatures(
            probabilities, ["no", "yes"], kind="text"
        ),
    )
    serve = hk.load(path).signatures["serving_default"]
    outputs = serve(text=tf.constant(["the cat sat", "hello"]))
    assert outputs["classes"].shape == (2, 2)
    np.testing.assert_allclose(
        outputs["probabilities"],
        probabilities(tf.constant(["the cat sat", "hello"])),
        rtol=1e-5,
    )


def test_predict_refuses_a_model_without_a_classifier_signature(
    image_model, tmp_path
):
    from keras_hubkit import errors
    from keras_hubkit.app import predict

    with pytest.raises(errors.SignatureError, match="serving_default"):
        predict.predict_files(image_model, [str(tmp_path / "x.jpg")])
    with pytest.raises(errors.HandleNotFoundError, match="hubkit train"):
        predict.predict_files(str(tmp_path / "nope"), ["x.jpg"])


@pytest.mark.slow
def test_train_refuses_an_image_size_the_model_was_not_traced_for(
    trained, image_model, tmp_path, capsys
):
    from keras_hubkit.app import cli

    data, _ = trained
    out = tmp_path / "o"
    args = ["train", "--data", str(data), "--handle", image_model]
    args += ["--output", str(out), "--image-size", "16", "16"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "InputSpecError: Expected image_size=(8, 8)" in err
    assert "compute_output_spec" not in err
    assert not out.exists()
