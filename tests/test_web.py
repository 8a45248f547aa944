"""The web app's JSON API: good requests, and every kind of malformed or oversized one gets a 4xx."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from nnscratch.cli import main
from nnscratch.errors import ModelFileError
from nnscratch.network import Network
from nnscratch.web import create_app
from nnscratch.web.app import MAX_BODY_BYTES, MODELS_VARIABLE, app_from_environment
from nnscratch.web.served import LEVELS, ServedModel, load_models
from tests.conftest import bomb_png

CNN_SPEC = "1x28x28-conv4k3-bn-relu-maxpool2-conv6k3p1-relu-maxpool2-flatten-12:tanh-10:softmax"


@pytest.fixture(scope="module")
def net():
    net = Network.from_spec("784-16:relu-12:tanh-10:softmax", seed=0)
    net.metadata = {"test_accuracy": 0.875}
    return net


@pytest.fixture(scope="module")
def client(net):
    return TestClient(create_app(net, model_name="tiny.npz"))


@pytest.fixture(scope="module")
def cnn():
    net = Network.from_spec(CNN_SPEC, seed=0)
    net.state[:] = np.random.default_rng(0).uniform(0.5, 1.5, net.state.size)  # batch norm statistics that matter
    return net


@pytest.fixture(scope="module")
def both(net, cnn):
    """The app serving the MLP (the default) and the convnet side by side."""
    return TestClient(create_app([ServedModel("tiny.npz", net), ServedModel("conv.npz", cnn)]))


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
    # each hidden layer's units after its activation, by value: the outputs of the layers 784-16:relu, 16-12:tanh
    outputs = net.layer_outputs(pixels.reshape(1, -1))
    assert [len(a) for a in result["activations"]] == [16, 12]
    for sent, output in zip(result["activations"], outputs[:2], strict=True):
        np.testing.assert_allclose(sent, output[0], rtol=1e-6, atol=1e-7)  # float32, sent in full
    np.testing.assert_allclose(result["pixels"], pixels, rtol=1e-6)


def test_a_calibrated_model_answers_with_calibrated_probabilities_and_a_verdict(net, rng):
    from nnscratch.calibration import Calibration

    calibrated = net.copy()
    calibrated.calibration = Calibration(temperature=2.5, score="energy", not_sure_below=1e9, not_a_digit_below=0.0)
    app = TestClient(create_app(calibrated, model_name="calibrated.npz"))
    pixels = rng.random(784).astype(np.float32)
    result = app.post("/api/predict", json={"pixels": pixels.tolist()}).json()
    np.testing.assert_allclose(result["probabilities"], calibrated.predict_proba(pixels.reshape(1, -1))[0], rtol=1e-5)
    assert result["verdict"] == calibrated.verdicts(pixels.reshape(1, -1))[0] in ("not sure", "not a digit")
    assert result["label"] == int(np.argmax(result["probabilities"]))  # the label and probabilities stay


def test_an_uncalibrated_model_says_digit_or_not_sure(client, rng):
    result = client.post("/api/predict", json={"pixels": rng.random(784).tolist()}).json()
    assert result["verdict"] == ("not sure" if max(result["probabilities"]) < 0.5 else "digit")


def test_serve_with_no_model_serves_the_shipped_reader(monkeypatch):
    import uvicorn

    from nnscratch.commands import serve

    started = {}
    monkeypatch.setattr(serve, "listen_socket", lambda host, port: __import__("socket").socket())
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: started.setdefault("app", self.config.app))
    assert main(["serve", "--port", "8123"]) == 1  # the fake server never started
    models = TestClient(started["app"]).get("/api/models").json()
    assert models["default"] == "reader.npz" and [m["name"] for m in models["models"]] == ["reader.npz"]


def test_predict_from_a_drawn_image_returns_what_the_network_saw(client):
    result = client.post("/api/predict", json={"image": data_url(drawn_seven())}).json()
    assert len(result["probabilities"]) == 10 and sum(result["probabilities"]) == pytest.approx(1.0, rel=1e-5)
    seen = np.array(result["pixels"]).reshape(28, 28)
    assert seen.max() == pytest.approx(1.0, abs=0.05) and seen[0].max() == 0.0  # ink centred, border empty
    assert result["label"] == int(np.argmax(result["probabilities"]))  # the most probable digit


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
        (json.dumps({"pixels": [-0.5] + [0.5] * 783}).encode(), 422, "0..1"),
        (json.dumps({"pixels": [2**70] + [0.5] * 783}).encode(), 422, "0..1"),  # an integer beyond int64
        (json.dumps({"image": 42}).encode(), 422, "data URL"),
        (json.dumps({"image": "http://example.com/x.png"}).encode(), 422, "data URL"),
        (json.dumps({"image": "data:image/png;base64,@@@"}).encode(), 422, "invalid base64"),
        (
            json.dumps({"image": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}).encode(),
            422,
            "not an image",
        ),
        (json.dumps({"image": "data:image/png;base64,"}).encode(), 422, "empty"),
        # everything after the first marker is the payload: a second marker in it is not base64
        (json.dumps({"image": "data:image/png;base64,AAAA;base64,AAAA"}).encode(), 422, "invalid base64"),
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


@pytest.mark.timeout(60)
@pytest.mark.parametrize("streamed", [False, True])
def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(client, streamed):
    def send(n: int):
        body = b"[" + b" " * (n - 2) + b"]"  # valid JSON of n bytes, though not a request: 400 or 422 if read
        content = iter([body[: n // 2], body[n // 2 :]]) if streamed else body  # a generator: no Content-Length
        return client.post("/api/predict", content=content, headers={"Content-Type": "application/json"})

    read = send(MAX_BODY_BYTES)
    assert read.status_code in (400, 422) and "at most" not in read.json()["detail"]
    assert send(MAX_BODY_BYTES + 1).status_code == 413


def test_a_streamed_body_is_cut_off_with_413_just_past_the_limit_without_reading_the_rest(live_server):
    """A chunked body (no Content-Length) of 50 MB: the real server answers 413 once it has read a little
    over 1 MB, and the client sees that answer before it has sent the rest."""
    import select
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(live_server)
    chunk = b" " * 65_536
    sent = 0
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 50_000_000:
            if select.select([conn], [], [], 0.001)[0]:  # the server has answered: stop sending
                break
            try:
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):  # the server closed the connection
                break
            sent += len(chunk)
        else:
            conn.sendall(b"0\r\n\r\n")  # everything was sent before any answer came
        answer = b""
        while b"}" not in answer:
            part = conn.recv(65_536)
            if not part:
                break
            answer += part
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"at most 1,000,000 bytes" in answer
    # measured on loopback: 1.05-1.11 MB had been sent when the answer came; reading it all would be 50 MB
    assert MAX_BODY_BYTES < sent < 2 * MAX_BODY_BYTES


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

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import load_test

    result = load_test.run(str(digit_model), requests=200, concurrency=20, kind=kind, timeout=60)
    assert result["requests"] == 200 and result["errors"] == 0, result["error_kinds"]
    assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


# -- several models, feature maps ----------------------------------------------------------------


def seven_pixels() -> list[float]:
    array = np.zeros((28, 28))
    array[6:8, 8:20] = 1.0
    for row in range(8, 24):
        array[row, 19 - (row - 8) // 2] = 0.8
    return array.ravel().tolist()


def test_models_are_listed_with_the_first_as_default(both, net, cnn):
    catalogue = both.get("/api/models").json()
    assert catalogue["default"] == "tiny.npz"
    listed = {model["name"]: model for model in catalogue["models"]}
    assert list(listed) == ["tiny.npz", "conv.npz"]
    assert listed["tiny.npz"]["spec"] == net.spec and listed["tiny.npz"]["test_accuracy"] == 0.875
    assert listed["conv.npz"]["spec"] == cnn.spec and listed["conv.npz"]["parameters"] == cnn.n_params
    assert listed["conv.npz"]["test_accuracy"] is None
    assert both.get("/api/model").json() == listed["tiny.npz"]  # the first model, as before


def test_a_convnet_lists_its_conv_and_pool_layers_with_their_shapes(both):
    info = both.get("/api/models").json()["models"][1]
    assert info["feature_maps"] == [
        {"layer": "conv4k3", "after": ["bn", "relu"], "shape": [4, 26, 26]},
        {"layer": "maxpool2", "after": [], "shape": [4, 13, 13]},
        {"layer": "conv6k3p1", "after": ["relu"], "shape": [6, 13, 13]},
        {"layer": "maxpool2", "after": [], "shape": [6, 6, 6]},
    ]
    assert info["layers"] == [{"units": 12, "activation": "tanh"}, {"units": 10, "activation": "softmax"}]


def test_predict_asks_the_named_model_and_the_first_by_default(both, net, cnn):
    pixels = np.array(seven_pixels(), dtype=np.float32)
    for name, model in (("tiny.npz", net), ("conv.npz", cnn)):
        result = both.post("/api/predict", json={"pixels": pixels.tolist(), "model": name}).json()
        assert result["model"] == name
        np.testing.assert_allclose(result["probabilities"], model.predict_proba(pixels)[0], rtol=1e-5, atol=1e-7)
    default = both.post("/api/predict", json={"pixels": pixels.tolist()}).json()
    assert default["model"] == "tiny.npz" and default["feature_maps"] == []


def test_feature_maps_are_the_layer_outputs_in_255_steps_of_their_scale(both, cnn):
    pixels = np.array(seven_pixels(), dtype=np.float32)
    result = both.post("/api/predict", json={"pixels": pixels.tolist(), "model": "conv.npz"}).json()
    outputs = cnn.layer_outputs(pixels.reshape(1, -1))
    shown = {"conv4k3": outputs[2], "conv6k3p1": outputs[5]}  # each convolution after its bn and relu
    pools = iter([outputs[3], outputs[6]])
    for maps in result["feature_maps"]:
        expected = (shown[maps["layer"]] if maps["layer"] in shown else next(pools))[0]  # (C, H, W)
        values = np.array(maps["values"])
        assert list(expected.shape) == maps["shape"] and values.size == expected.size
        assert maps["scale"] == pytest.approx(np.abs(expected).max(), rel=1e-6)
        assert np.abs(values).max() == LEVELS and values.dtype.kind == "i"
        # row-major (channel, row, column), each value within half a step of the truth
        np.testing.assert_allclose(
            values.reshape(expected.shape) * maps["scale"] / LEVELS, expected, atol=0.51 * maps["scale"] / LEVELS
        )
    # the dense part as before: the 12:tanh layer's units, by value (outputs[8], after the flatten at 7)
    assert [len(a) for a in result["activations"]] == [12]
    np.testing.assert_allclose(result["activations"][0], outputs[8][0], rtol=1e-6, atol=1e-7)


def test_hidden_units_are_shown_after_the_batch_norm_and_activation_that_follow_them(rng):
    net = Network.from_spec("784-16-bn-tanh-8-bn-relu-10", seed=0)
    # batch norm that is far from the identity: running statistics and gamma, beta set by hand
    net.state[:] = rng.uniform(0.2, 2.0, net.state.size)  # means and (positive) variances
    for slot in net.layout.slots:
        if slot.name in ("gamma", "beta"):
            size = int(np.prod(slot.shape))
            net.params[slot.offset : slot.offset + size] = rng.uniform(-1.5, 1.5, size)
    client = TestClient(create_app(net, model_name="bn.npz"))
    info = client.get("/api/model").json()
    assert info["layers"] == [
        {"units": 16, "activation": "tanh"},
        {"units": 8, "activation": "relu"},
        {"units": 10, "activation": "softmax"},
    ]
    pixels = np.array(seven_pixels(), dtype=np.float32)
    result = client.post("/api/predict", json={"pixels": pixels.tolist()}).json()
    # layers: 0 dense, 1 bn, 2 tanh, 3 dense, 4 bn, 5 relu, 6 dense (the logits)
    outputs = [output[0] for output in net.layer_outputs(pixels.reshape(1, -1))]
    by_hand = np.tanh(outputs[1])  # the forward pass by hand: the last batch norm's output, then its activation
    np.testing.assert_allclose(outputs[2], by_hand, rtol=1e-5, atol=1e-6)
    assert not np.allclose(outputs[2], np.tanh(outputs[0]), atol=1e-2)  # the batch norm is not the identity
    assert (outputs[5] > 0).any() and (outputs[4] < 0).any()  # relu keeps some units and zeroes others
    assert len(result["activations"]) == 2
    np.testing.assert_allclose(result["activations"][0], outputs[2], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result["activations"][1], np.maximum(outputs[4], 0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result["probabilities"], net.predict_proba(pixels)[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sign", [1.0, -1.0])  # one of the two has its largest |value| negative
def test_feature_maps_with_negative_values_are_sent_in_minus_255_to_255_of_their_largest_magnitude(sign):
    assert LEVELS == 255  # what docs/howto/serve.md tells API users: values[i] * scale / 255
    net = Network.from_spec("1x28x28-conv4k3-maxpool2-10", seed=0)  # no activation: the maps go negative
    conv = [slot for slot in net.layout.slots if slot.layer == 0]
    start, end = conv[0].offset, conv[-1].offset + int(np.prod(conv[-1].shape))
    net.params[start:end] *= sign  # the convolution's W and b: its maps change sign
    client = TestClient(create_app(net, model_name="signed.npz"))
    pixels = np.array(seven_pixels(), dtype=np.float32)
    result = client.post("/api/predict", json={"pixels": pixels.tolist()}).json()
    outputs = net.layer_outputs(pixels.reshape(1, -1))
    assert [maps["layer"] for maps in result["feature_maps"]] == ["conv4k3", "maxpool2"]
    for maps, expected in zip(result["feature_maps"], (outputs[0][0], outputs[1][0]), strict=True):
        assert expected.min() < 0 < expected.max()
        values = np.array(maps["values"])
        assert maps["shape"] == list(expected.shape) and values.shape == (expected.size,)
        assert values.dtype.kind == "i" and np.abs(values).max() == LEVELS
        assert values.min() >= -LEVELS and values.max() <= LEVELS
        assert maps["scale"] == pytest.approx(float(np.abs(expected).max()), rel=1e-6)
        # row-major (channel, row, column); rounding to the nearest step is within half a step
        step = maps["scale"] / LEVELS
        np.testing.assert_allclose(values.reshape(expected.shape) * step, expected, rtol=0, atol=0.51 * step)
    conv_map = outputs[0][0]
    if sign < 0:  # the case where a scale from the largest value (not |value|) would overflow -255
        assert -conv_map.min() > conv_map.max()


def test_pixels_may_mix_integers_and_floats(client):
    pixels = [0] * 392 + [0.75] * 391 + [1]  # JSON writes 0 and 1 as integers
    response = client.post("/api/predict", json={"pixels": pixels})
    assert response.status_code == 200 and response.json()["pixels"][-1] == 1.0


@pytest.mark.parametrize(
    "model, got",
    [
        ("nope.npz", "'nope.npz'"),
        (7, "not a string"),
        (["tiny.npz"], "not a string"),
        ("x" * 150, repr("x" * 100)),  # a long name is echoed to its first 100 characters
    ],
)
def test_an_unknown_model_gets_a_422_that_lists_the_models(both, model, got):
    response = both.post("/api/predict", json={"pixels": seven_pixels(), "model": model})
    assert response.status_code == 422
    assert response.json()["detail"] == f'"model" must name a served model: tiny.npz, conv.npz; got {got}'


def test_blank_pixels_get_the_same_answer_as_a_blank_image(client):
    image = client.post("/api/predict", json={"image": data_url(Image.new("L", (280, 280), 255))})
    pixels = client.post("/api/predict", json={"pixels": [0] * 784})
    assert pixels.status_code == image.status_code == 422
    assert pixels.json() == image.json() and "blank" in pixels.json()["detail"]


def test_predicting_runs_off_the_event_loop(net, monkeypatch):
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    started, release = threading.Event(), threading.Event()
    loops = []
    read = ServedModel.read

    def slow_read(self, pixels):
        try:
            loops.append(asyncio.get_running_loop())
        except RuntimeError:  # no event loop runs in this thread
            loops.append(None)
        started.set()
        release.wait(10)
        return read(self, pixels)

    monkeypatch.setattr(ServedModel, "read", slow_read)
    timer = threading.Timer(10, release.set)  # never hangs, even if the loop were blocked
    timer.start()
    with TestClient(create_app(net)) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/api/predict", json={"pixels": seven_pixels()})
        assert started.wait(10)
        assert client.get("/api/model").status_code == 200  # answered while the prediction is still running
        assert not pending.done()
        release.set()
        assert pending.result(10).status_code == 200
    timer.cancel()
    assert loops == [None]


def test_two_model_files_of_one_name_are_refused(tmp_path, net):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [net.save(tmp_path / "a" / "model.npz"), net.save(tmp_path / "b" / "model.npz")]
    with pytest.raises(ModelFileError, match="two models are named model.npz"):
        load_models(paths)
    with pytest.raises(ValueError, match="a name of its own"):
        create_app([ServedModel("x", net), ServedModel("x", net)])


def test_serve_reports_a_bad_model_file_in_one_line(tmp_path, net, capsys):
    good = net.save(tmp_path / "good.npz")
    assert main(["serve", str(good), str(tmp_path / "missing.npz")]) == 1
    message = capsys.readouterr().err.strip()
    assert message.startswith("nnscratch serve: error:") and "missing.npz" in message and "\n" not in message


def test_each_worker_builds_its_app_from_the_model_paths(tmp_path, net, cnn, monkeypatch):
    paths = [str(net.save(tmp_path / "mlp.npz")), str(cnn.save(tmp_path / "cnn.npz"))]
    monkeypatch.setenv(MODELS_VARIABLE, json.dumps(paths))
    client = TestClient(app_from_environment())
    assert [m["name"] for m in client.get("/api/models").json()["models"]] == ["mlp.npz", "cnn.npz"]
    assert client.post("/api/predict", json={"pixels": seven_pixels(), "model": "cnn.npz"}).status_code == 200


@pytest.mark.timeout(60)
def test_serve_with_two_workers_answers_for_every_model(tmp_path, net, cnn):
    import subprocess
    import sys
    import time

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from load_test import free_port

    paths = [str(net.save(tmp_path / "mlp.npz")), str(cnn.save(tmp_path / "cnn.npz"))]
    port = free_port()
    command = [sys.executable, "-m", "nnscratch.cli", "serve", *paths, "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                names = [m["name"] for m in httpx.get(url + "/api/models", timeout=2).json()["models"]]
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()
                time.sleep(0.1)
        assert names == ["mlp.npz", "cnn.npz"]
        for name in names:
            answer = httpx.post(url + "/api/predict", json={"pixels": seven_pixels(), "model": name}, timeout=10)
            assert answer.status_code == 200 and answer.json()["model"] == name
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_serve_asked_to_stop_by_a_signal_shuts_down_and_exits_0(tmp_path, net, stop):
    import signal
    import subprocess
    import sys
    import time

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from load_test import free_port

    port = free_port()
    command = [sys.executable, "-m", "nnscratch.cli", "serve", str(net.save(tmp_path / "m.npz")), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 40
    while True:
        try:
            assert httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=2).status_code == 200
            break
        except httpx.HTTPError:
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()
            time.sleep(0.1)
    server.send_signal(getattr(signal, stop))
    assert server.wait(timeout=20) == 0  # a server asked to stop ends normally, as python -m http.server does
    assert "Traceback" not in server.stderr.read().decode()


# -- images the API must not decode, or must turn; the port -----------------------------------------------


def test_an_image_over_the_pixel_limit_gets_a_422_before_it_is_decoded(client):
    import tracemalloc

    from tests.test_images import wide_png

    url = "data:image/png;base64," + base64.b64encode(wide_png()).decode()
    tracemalloc.start()
    try:
        response = client.post("/api/predict", json={"image": url})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 422  # as a decompression bomb is answered
    assert response.json()["detail"] == (
        "image: 40,000×1,000 pixels is too large (limit 4,000,000 pixels); scale it down first"
    )
    assert peak < 10_000_000  # the request's JSON and base64 only: decoding would take 40 MB, then 320 MB


def test_a_photo_saved_sideways_is_read_upright_by_the_api(client):
    from tests.test_images import seven_image, sideways

    upright = client.post("/api/predict", json={"image": data_url(seven_image())}).json()
    url = "data:image/png;base64," + base64.b64encode(sideways(seven_image(), 6)).decode()
    turned = client.post("/api/predict", json={"image": url}).json()
    assert turned["pixels"] == upright["pixels"] and turned["probabilities"] == upright["probabilities"]


def test_a_postscript_image_is_refused_by_the_api(client):
    from tests.test_images import seven_image

    buffer = io.BytesIO()
    seven_image().save(buffer, format="EPS")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = client.post("/api/predict", json={"image": url})
    assert response.status_code == 422 and "EPS images are not accepted" in response.json()["detail"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_reports_a_port_in_use_in_one_line(tmp_path, net, capsys, workers):
    import socket

    model = str(net.save(tmp_path / "m.npz"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", model, "--port", str(port), "--workers", workers]) == 1
    message = capsys.readouterr().err.strip()
    assert message == f"nnscratch serve: error: port {port} on 127.0.0.1 is already in use; choose another with --port"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("port", ["0", "65536", "70000", "-1", "http"])
def test_serve_refuses_a_port_out_of_range_before_loading_anything(tmp_path, capsys, port):
    with pytest.raises(SystemExit) as info:
        main(["serve", str(tmp_path / "missing.npz"), "--port", port, "--workers", "2"])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"nnscratch serve: error: argument --port: expected a port number from 1 to 65535, got '{port}'"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("workers", ["0", "9", "100000"])
def test_serve_refuses_more_workers_than_four_per_core_before_starting_any(tmp_path, capsys, monkeypatch, workers):
    from nnscratch.commands import serve

    monkeypatch.setattr(serve, "available_cores", lambda: 2)  # at most 8 processes on a 2-core machine
    with pytest.raises(SystemExit) as info:
        main(["serve", str(tmp_path / "missing.npz"), "--workers", workers])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (
        "nnscratch serve: error: argument --workers: expected an integer from 1 to 8 "
        f"(4 per core on this machine's 2), got '{workers}'"
    )
    assert serve.worker_count("8") == 8


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "host, message",
    [
        ("192.0.2.1", "cannot listen on 192.0.2.1 port 8765 ("),  # an address of no interface here
        ("no-such-host.invalid", "cannot resolve --host 'no-such-host.invalid'"),
    ],
)
def test_serve_reports_a_host_it_cannot_listen_on_in_one_line(tmp_path, net, capsys, host, message):
    model = str(net.save(tmp_path / "m.npz"))
    assert main(["serve", model, "--host", host, "--port", "8765"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nnscratch serve: error: {message}") and "\n" not in err


def test_a_network_whose_probabilities_overflow_answers_500_with_the_reason_never_200_with_nulls(tmp_path, rng):
    huge = Network.from_spec("784-8:relu-10:softmax", seed=0)
    huge.params[:] = 3e38  # finite, but the float32 logits overflow: softmax would give NaN, JSON null
    path = huge.save(tmp_path / "huge.npz")
    sane = Network.from_spec("784-8:relu-10:softmax", seed=0)
    client = TestClient(create_app([ServedModel("huge.npz", Network.load(path)), ServedModel("sane.npz", sane)]))
    pixels = rng.random(784).tolist()
    response = client.post("/api/predict", json={"pixels": pixels, "model": "huge.npz"})
    assert response.status_code == 500 and "probabilities" not in response.json()
    assert response.json()["detail"].startswith(f"{path} produced non-finite probabilities")
    # the other model, and the app, go on answering
    answer = client.post("/api/predict", json={"pixels": pixels, "model": "sane.npz"})
    assert answer.status_code == 200 and np.all(np.isfinite(answer.json()["probabilities"]))


def test_serve_refuses_a_model_that_would_answer_nan_when_it_loads(tmp_path):
    net = Network.from_spec("784-4-bn-relu-10:softmax", seed=0)
    net.state[4:] = [1.0, -1.0, 1.0, 1.0]  # a negative running variance: sqrt gives NaN for every drawing
    path = net.save(tmp_path / "bad.npz")
    with pytest.raises(ModelFileError, match="layer 1's running variance in the state is negative"):
        load_models([path])


def test_a_convolutions_map_is_shown_after_every_elementwise_layer_that_follows_it(rng):
    net = Network.from_spec("1x28x28-conv2k3-bn-tanh-dropout0.2-maxpool2-conv3k3-flatten-10", seed=0)
    net.state[:] = rng.random(net.state.size)  # batch norm that is not the identity
    client = TestClient(create_app(net, model_name="chain.npz"))
    described = client.get("/api/model").json()["feature_maps"]
    assert [(m["layer"], m["after"], m["shape"]) for m in described] == [
        ("conv2k3", ["bn", "tanh", "dropout0.2"], [2, 26, 26]),  # up to the pooling, which is shown apart
        ("maxpool2", [], [2, 13, 13]),
        ("conv3k3", [], [3, 11, 11]),  # a flatten is no elementwise layer: the convolution's own output
    ]
    pixels = rng.random(784).astype(np.float32)
    answer = client.post("/api/predict", json={"pixels": pixels.tolist()}).json()
    outputs = net.layer_outputs(pixels.reshape(1, -1))
    for maps, index in zip(answer["feature_maps"], (3, 4, 5), strict=True):
        expected = outputs[index][0]  # (C, H, W), as the page shows it
        step = maps["scale"] / LEVELS
        np.testing.assert_allclose(np.array(maps["values"]).reshape(expected.shape) * step, expected, atol=0.51 * step)


def test_a_dense_layer_is_described_by_the_activation_that_follows_it_past_dropout_and_batch_norm():
    net = Network.from_spec("784-16-tanh-dropout0.2-8-bn-selu-10", seed=0)
    layers = TestClient(create_app(net, model_name="m.npz")).get("/api/model").json()["layers"]
    assert [(layer["units"], layer["activation"]) for layer in layers] == [(16, "tanh"), (8, "selu"), (10, "softmax")]


def test_serve_listens_where_the_readme_says_by_default():
    from nnscratch.cli import build_parser

    args = build_parser().parse_args(["serve", "model.npz"])
    assert (args.host, args.port, args.workers, args.models) == ("127.0.0.1", 8000, 1, ["model.npz"])


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Server:
    """Stands in for uvicorn's server: records how it was run; ``started`` as uvicorn sets it once up."""

    started = True
    runs: list = []

    def __init__(self, config):
        self.config = config

    def run(self, sockets):
        type(self).runs.append((self.config, [s.getsockname()[1] for s in sockets]))


@pytest.mark.parametrize("started, code", [(True, 0), (False, 1)])
def test_serve_runs_one_server_on_its_socket_with_the_threads_asked_and_says_if_it_started(
    tmp_path, net, monkeypatch, started, code
):
    import uvicorn

    from nnscratch.parallel import ENV_THREADS

    monkeypatch.setenv(ENV_THREADS, "1")  # restored after the test, whatever serve sets
    monkeypatch.setattr(uvicorn, "Server", type("Server", (_Server,), {"started": started, "runs": []}))
    model = str(net.save(tmp_path / "m.npz"))
    port = _free_port()
    assert main(["serve", model, "--port", str(port), "--threads", "3"]) == code
    ((config, ports),) = uvicorn.Server.runs
    assert (config.host, config.port, config.log_level, ports) == ("127.0.0.1", port, "warning", [port])
    assert __import__("os").environ[ENV_THREADS] == "3"  # the app's networks (and any workers) compute with 3


def test_the_probe_socket_reuses_a_port_in_time_wait_and_is_closed_before_workers_bind(tmp_path, net, monkeypatch):
    import socket

    import uvicorn

    from nnscratch.commands import serve

    probe = serve.listen_socket("127.0.0.1", 0)
    assert probe.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0  # as uvicorn binds
    probe.close()
    probes, calls, real = [], [], serve.listen_socket

    def listen(host, port):
        probes.append(real(host, port))
        return probes[-1]

    monkeypatch.setattr(serve, "listen_socket", listen)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs, probes[0].fileno())))
    monkeypatch.setenv(MODELS_VARIABLE, "[]")  # restored after the test
    model = str(net.save(tmp_path / "m.npz"))
    assert main(["serve", model, "--port", str(_free_port()), "--workers", "2"]) == 0
    (((target,), kwargs, fileno),) = calls
    assert target == "nnscratch.web.app:app_from_environment" and kwargs["workers"] == 2 and kwargs["factory"]
    assert fileno == -1  # the probe was closed before uvicorn's supervisor binds the port itself


# -- explanations and attacks through the API --------------------------------------------------------------


@pytest.mark.parametrize("method", ["gradient", "gradxinput", "smoothgrad", "integrated"])
def test_predict_with_explain_adds_the_attribution_of_each_pixel(client, net, rng, method):
    from nnscratch.explain import explain

    pixels = rng.random(784).astype(np.float32)
    result = client.post("/api/predict", json={"pixels": pixels.tolist(), "explain": method}).json()
    expected = explain(net, pixels.reshape(1, -1), method)[0]
    assert len(result["attribution"]) == 784 and result["label"] == int(np.argmax(result["probabilities"]))
    np.testing.assert_allclose(result["attribution"], expected, rtol=1e-4, atol=1e-6)
    assert "attribution" not in client.post("/api/predict", json={"pixels": pixels.tolist()}).json()


def test_attack_returns_the_attacked_pixels_within_epsilon_and_the_new_answer(client, net, rng):
    from nnscratch.attack import pgd

    pixels = rng.random(784).astype(np.float32)
    body = {"pixels": pixels.tolist(), "epsilon": 0.2, "method": "pgd", "steps": 5}
    result = client.post("/api/attack", json=body).json()
    attacked = np.array(result["pixels"])
    was = int(net.predict(pixels.reshape(1, -1))[0])
    expected = pgd(net, pixels.reshape(1, -1), [was], 0.2, steps=5)[0]
    np.testing.assert_allclose(attacked, expected, atol=1e-6)
    assert np.abs(attacked - pixels).max() <= 0.2 + 1e-6 and attacked.min() >= 0 and attacked.max() <= 1
    assert result["was"] == was and result["epsilon"] == 0.2 and result["method"] == "pgd"
    assert result["label"] == int(np.argmax(result["probabilities"])) and result["verdict"] in ("digit", "not sure")
    fgsm = client.post("/api/attack", json={"image": data_url(drawn_seven()), "method": "fgsm"}).json()
    assert fgsm["epsilon"] == 0.1 and len(fgsm["pixels"]) == 784  # the defaults: ε 0.1


@pytest.mark.parametrize(
    "path, extra, message",
    [
        ("/api/predict", {"explain": "lime"}, '"explain" must be one of gradient, gradxinput, smoothgrad, integrated'),
        ("/api/predict", {"explain": 3}, '"explain" must be one of'),
        ("/api/attack", {"epsilon": 1.5}, '"epsilon" must be a number in [0, 1]'),
        ("/api/attack", {"epsilon": "0.1"}, '"epsilon" must be a number in [0, 1]'),
        ("/api/attack", {"epsilon": True}, '"epsilon" must be a number in [0, 1]'),
        ("/api/attack", {"method": "deepfool"}, '"method" must be one of fgsm, pgd'),
        ("/api/attack", {"steps": 101}, '"steps" must be a whole number from 1 to 100'),
        ("/api/attack", {"steps": 2.0}, '"steps" must be a whole number from 1 to 100'),
    ],
)
def test_explain_and_attack_requests_are_validated_like_a_prediction(client, path, extra, message):
    answer = client.post(path, json={"pixels": [0.5] * 784, **extra})
    assert answer.status_code == 422 and answer.json()["detail"].startswith(message)
    assert client.post("/api/attack", content=b"not json").status_code == 400
    assert client.post("/api/attack", json={"pixels": [0.5] * 783}).status_code == 422
