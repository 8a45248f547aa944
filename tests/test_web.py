"""The web app's JSON API: good requests, and every kind of malformed or oversized one gets a 4xx."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from nnscratch.network import Network
from nnscratch.web import create_app
from nnscratch.web.app import MAX_BODY_BYTES
from tests.conftest import bomb_png


@pytest.fixture(scope="module")
def net():
    net = Network.from_spec("784-16:relu-12:tanh-10:softmax", seed=0)
    net.metadata = {"test_accuracy": 0.875}
    return net


@pytest.fixture(scope="module")
def client(net):
    return TestClient(create_app(net, model_name="tiny.npz"))


def data_url(image: Image.Image, fmt="PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def drawn_seven() -> Image.Image:
    """A black 7 drawn on white, like the page's canvas."""
    array = np.full((280, 280), 255, dtype=np.uint8)
    array[60:80, 60:220] = 0
    for row in range(80, 230):
        col = 220 - (row - 80) // 2
        array[row, col - 10 : col + 10] = 0
    return Image.fromarray(array)


def test_page_and_assets_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200


def test_model_describes_the_architecture(client, net):
    info = client.get("/api/model").json()
    assert info["spec"] == net.spec and info["test_accuracy"] == 0.875 and info["name"] == "tiny.npz"
    assert [layer["units"] for layer in info["layers"]] == [16, 12, 10]


def test_predict_from_pixels_matches_the_network(client, net, rng):
    pixels = rng.random(784).astype(np.float32)
    result = client.post("/api/predict", json={"pixels": pixels.tolist()}).json()
    expected = net.predict_proba(pixels.reshape(1, -1))[0]
    np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5)
    assert result["label"] == int(expected.argmax())
    assert [len(a) for a in result["activations"]] == [16, 12]
    np.testing.assert_allclose(result["pixels"], pixels, rtol=1e-6)


def test_predict_from_a_drawn_image_returns_what_the_network_saw(client):
    result = client.post("/api/predict", json={"image": data_url(drawn_seven())}).json()
    assert len(result["probabilities"]) == 10 and sum(result["probabilities"]) == pytest.approx(1.0, rel=1e-5)
    seen = np.array(result["pixels"]).reshape(28, 28)
    assert seen.max() == pytest.approx(1.0, abs=0.05) and seen[0].max() == 0.0  # ink centred, border empty
    assert 0 <= result["label"] <= 9


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"not json", 400, "must be JSON"),
        (b"[1, 2, 3]", 422, "exactly one of"),
        (json.dumps({}).encode(), 422, "exactly one of"),
        (json.dumps({"image": "x", "pixels": [0] * 784}).encode(), 422, "exactly one of"),
        (json.dumps({"pixels": [0.5] * 783}).encode(), 422, "784 numbers"),
        (json.dumps({"pixels": "abc"}).encode(), 422, "784 numbers"),
        (json.dumps({"pixels": [0.5] * 783 + ["x"]}).encode(), 422, "finite numbers"),
        (json.dumps({"pixels": [0.5] * 783 + [True]}).encode(), 422, "finite numbers"),
        (b'{"pixels": [' + b"0.5," * 783 + b"NaN]}", 422, "finite numbers"),
        (json.dumps({"pixels": [0.5] * 783 + [2.0]}).encode(), 422, "0..1"),
        (json.dumps({"image": 42}).encode(), 422, "data URL"),
        (json.dumps({"image": "http://example.com/x.png"}).encode(), 422, "data URL"),
        (json.dumps({"image": "data:image/png;base64,@@@"}).encode(), 422, "invalid base64"),
        (
            json.dumps({"image": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}).encode(),
            422,
            "not an image",
        ),
        (json.dumps({"image": "data:image/png;base64,"}).encode(), 422, "empty"),
        (b"[" * 100000 + b"]" * 100000, 400, "must be JSON"),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_message(client, body, status, message):
    response = client.post("/api/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_blank_drawing_asks_for_a_digit(client):
    blank = Image.new("L", (280, 280), 255)
    response = client.post("/api/predict", json={"image": data_url(blank)})
    assert response.status_code == 422 and "blank" in response.json()["detail"]


def test_decompression_bomb_is_refused(client):
    url = "data:image/png;base64," + base64.b64encode(bomb_png()).decode()
    response = client.post("/api/predict", json={"image": url})
    assert response.status_code == 422 and "too large" in response.json()["detail"]


def test_oversized_bodies_are_refused_before_parsing(client):
    big = b'{"pixels": [' + b"0," * MAX_BODY_BYTES + b"0]}"
    response = client.post("/api/predict", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "at most" in response.json()["detail"]

    def chunks():  # no Content-Length: the stream is cut off as it arrives
        for _ in range(200):
            yield b" " * 10_000

    response = client.post("/api/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_unknown_routes_and_methods_are_4xx(client):
    assert client.get("/api/predict").status_code == 405
    assert client.get("/nothing").status_code == 404


def test_a_model_of_the_wrong_input_size_is_refused():
    with pytest.raises(ValueError, match="784 inputs"):
        create_app(Network.from_spec("10-3:softmax"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["pixels", "image"])
def test_bounded_load_on_a_live_server_has_no_errors(digit_model, kind):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import load_test

    result = load_test.run(str(digit_model), requests=200, concurrency=20, kind=kind, timeout=60)
    assert result["requests"] == 200 and result["errors"] == 0, result["error_kinds"]
    assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
