"""``nnscratch predict``: good files are read, bad ones reported one by one, the exit code tells."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nnscratch.cli import main
from nnscratch.network import Network
from tests.conftest import bomb_png
from tests.test_images import digit_image


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "one.png"
    digit_image().save(good)
    jpeg = tmp_path / "two.jpg"
    digit_image(60, 200).convert("RGB").save(jpeg, quality=90)
    gif = tmp_path / "three.gif"
    digit_image(dark_on_light=False).save(gif)
    bad = {
        "text.png": b"hello, not an image",
        "empty.png": b"",
        "truncated.png": (tmp_path / "one.png").read_bytes()[:80],
    }
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    return tmp_path


def test_predicts_each_image_with_top_three(digit_model, files, capsys):
    paths = [str(files / n) for n in ("one.png", "two.jpg", "three.gif")]
    assert main(["predict", str(digit_model), *paths]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, path in zip(lines, paths, strict=True):
        assert line.startswith(f"{path}: ") and line.count("%") == 3


def test_json_output_matches_the_network(digit_model, files, capsys):
    from nnscratch.images import load_digit

    assert main(["predict", str(digit_model), str(files / "one.png"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    expected = Network.load(digit_model).predict_proba(load_digit(files / "one.png").reshape(1, -1))[0]
    np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5)
    assert result["label"] == int(expected.argmax()) == result["top3"][0]["label"]
    assert [t["probability"] for t in result["top3"]] == sorted(
        (t["probability"] for t in result["top3"]), reverse=True
    )
    assert main(["predict", str(digit_model), str(files / "one.png"), "--json", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["label"] == result["label"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("text.png", "not an image"),
        ("empty.png", "empty"),
        ("truncated.png", "truncated"),
        ("bomb.png", "too large"),
        ("missing.png", "not found"),
    ],
)
def test_bad_files_are_reported_and_the_others_still_read(digit_model, files, capsys, name, message):
    code = main(["predict", str(digit_model), str(files / name), str(files / "one.png")])
    captured = capsys.readouterr()
    assert code == 1
    assert message in captured.err and "Traceback" not in captured.err
    assert "one.png: " in captured.out


def test_json_reports_errors_per_file(digit_model, files, capsys):
    assert main(["predict", str(digit_model), str(files / "text.png"), str(files / "one.png"), "--json"]) == 1
    results = json.loads(capsys.readouterr().out)["results"]
    assert "not an image" in results[0]["error"] and "label" in results[1]


def test_show_preprocessed_writes_what_the_network_sees(digit_model, files, tmp_path):
    out = tmp_path / "seen.png"
    assert (
        main(
            [
                "predict",
                str(digit_model),
                str(files / "one.png"),
                str(files / "two.jpg"),
                "--show-preprocessed",
                str(out),
            ]
        )
        == 0
    )
    strip = np.asarray(Image.open(out))
    assert strip.shape == (28, 56) and strip.max() > 200 and strip[0].max() == 0


def test_a_model_for_other_inputs_is_refused(tmp_path, files, capsys):
    model = Network.from_spec("10-3:softmax").save(tmp_path / "small.npz")
    assert main(["predict", str(model), str(files / "one.png")]) == 1
    assert "expects 10 inputs" in capsys.readouterr().err


def test_without_a_model_the_shipped_reader_reads_the_images(files, capsys):
    from nnscratch.images import load_digit
    from nnscratch.reader import load_reader, reader_path

    paths = [str(files / "one.png"), str(files / "two.jpg")]
    assert main(["predict", *paths, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"] == str(reader_path())
    reader = load_reader()
    for result, path in zip(answer["results"], paths, strict=True):
        row = load_digit(path).reshape(1, -1)
        np.testing.assert_allclose(result["probabilities"], reader.predict_proba(row)[0], rtol=1e-5)
        assert result["verdict"] == reader.verdicts(row)[0] in ("digit", "not sure", "not a digit")
    assert main(["predict", str(files / "one.png")]) == 0  # the plain form too
    assert capsys.readouterr().out.startswith(f"{files / 'one.png'}: ")


def test_each_answer_has_a_verdict_in_words(digit_model, files, tmp_path, capsys):
    from nnscratch.calibration import Calibration

    net = Network.load(digit_model)
    for calibration, expected in (
        (Calibration(temperature=1.0, score="energy", not_sure_below=1e9, not_a_digit_below=1e8), "not a digit"),
        (Calibration(temperature=1.0, score="energy", not_sure_below=1e9, not_a_digit_below=-1e9), "not sure"),
        (Calibration(temperature=1.0, score="energy", not_sure_below=-1e9, not_a_digit_below=-1e9), "digit"),
    ):
        net.calibration = calibration
        path = net.save(tmp_path / "calibrated.npz")
        assert main(["predict", str(path), str(files / "one.png"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["results"][0]["verdict"] == expected
        assert main(["predict", str(path), str(files / "one.png")]) == 0
        line = capsys.readouterr().out
        assert (expected in line) == (expected != "digit") and line.count("%") == 3  # probabilities stay


def test_a_model_with_no_images_after_it_is_a_one_line_error(digit_model, capsys):
    assert main(["predict", str(digit_model)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"nnscratch predict: error: no images given after the model {digit_model}; name the image files to read"
    )


def test_a_first_argument_is_a_model_by_its_name_or_its_zip_bytes(digit_model, files, tmp_path):
    from nnscratch.reader import is_model_file

    renamed = tmp_path / "model.bin"
    renamed.write_bytes(digit_model.read_bytes())
    assert is_model_file(digit_model) and is_model_file(renamed) and is_model_file(tmp_path / "missing.npz")
    assert not is_model_file(files / "one.png") and not is_model_file(tmp_path / "missing.png")
    assert main(["predict", str(renamed), str(files / "one.png")]) == 0


def test_test_time_augmentation_averages_the_answers_over_small_shifts(digit_model, files, capsys):
    from nnscratch.images import load_digit
    from nnscratch.tta import SHIFTS, answers, shifted

    net = Network.load(digit_model)
    row = load_digit(files / "one.png").reshape(1, -1)
    P, verdicts = answers(net, row, 5)
    image = row.reshape(1, 28, 28)
    moved = [shifted(image, dy, dx).reshape(1, -1) for dy, dx in SHIFTS[:5]]
    np.testing.assert_allclose(P, np.mean([net.predict_proba(m) for m in moved], axis=0), rtol=1e-6)
    assert verdicts == net.calibration.verdicts(np.mean([net.all_logits(m) for m in moved], axis=0))
    np.testing.assert_allclose(answers(net, row, 1)[0], net.predict_proba(row), rtol=1e-6)  # one shift: as is
    assert main(["predict", str(digit_model), str(files / "one.png"), "--json", "--tta", "5"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    np.testing.assert_allclose(result["probabilities"], P[0], rtol=1e-5)
    for bad in ("0", "10"):
        with pytest.raises(SystemExit):
            main(["predict", str(files / "one.png"), "--tta", bad])
    assert "a number of shifts from 1 to 9" in capsys.readouterr().err


def test_a_shift_moves_the_image_by_whole_pixels_and_brings_in_zeros():
    from nnscratch.tta import shifted

    image = np.arange(1.0, 10.0).reshape(1, 3, 3)
    np.testing.assert_array_equal(shifted(image, 1, 0)[0], [[0, 0, 0], [1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(shifted(image, 0, -1)[0], [[2, 3, 0], [5, 6, 0], [8, 9, 0]])
    np.testing.assert_array_equal(shifted(image, -1, 1)[0], [[0, 4, 5], [0, 7, 8], [0, 0, 0]])
    np.testing.assert_array_equal(shifted(image, 0, 0), image)
