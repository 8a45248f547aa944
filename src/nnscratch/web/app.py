"""A FastAPI app that serves one page to draw a digit on, and a JSON API that reads it.

    POST /api/predict   {"image": "data:image/png;base64,..."} or {"pixels": [784 numbers in 0..1]}
                        → {"label", "probabilities", "activations", "pixels"}
    GET  /api/model     → the architecture and its recorded test accuracy

"activations" holds, for each hidden dense layer, its units' values after the layers that follow it
up to the next layer with weights (its activation, batch norm, ...): what the page draws as cells.
A convolutional model's dense part is shown the same way.

Every malformed request gets a 4xx answer with a JSON ``detail`` message; bodies over
``MAX_BODY_BYTES`` are refused with 413 before they are parsed.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from importlib.resources import files
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from nnscratch.images import SIDE, ImageError, load_digit
from nnscratch.layers import Conv2D, Dense
from nnscratch.losses import softmax
from nnscratch.network import Network

MAX_BODY_BYTES = 1_000_000  # a 280×280 canvas as PNG is ~10-30 kB; this leaves ample room
STATIC = files("nnscratch.web") / "static"


class BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def create_app(net: Network, *, model_name: str = "model") -> FastAPI:
    """The web app for ``net``, which must take 28×28 = 784 inputs."""
    if net.n_in != SIDE * SIDE:
        raise ValueError(f"the web app needs a model with {SIDE * SIDE} inputs (28×28 images); this one has {net.n_in}")
    app = FastAPI(title="nnscratch", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a safety net
        return JSONResponse({"detail": "the request could not be processed"}, status_code=400)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    blocks = dense_blocks(net)

    @app.get("/api/model")
    async def model() -> dict[str, Any]:
        accuracy = net.metadata.get("test_accuracy")
        hidden = [{"units": units, "activation": activation} for units, activation, _ in blocks]
        return {
            "name": model_name,
            "spec": net.spec,
            "layers": [*hidden, {"units": net.n_classes, "activation": "softmax"}],
            "parameters": net.n_params,
            "test_accuracy": float(accuracy) if isinstance(accuracy, int | float) else None,
        }

    @app.post("/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            raise BadRequest(413, f"the request body must be at most {MAX_BODY_BYTES:,} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BadRequest(413, f"the request body must be at most {MAX_BODY_BYTES:,} bytes")
        pixels = parse_request(bytes(body))
        outputs = net.layer_outputs(pixels.reshape(1, -1))
        probabilities = softmax(outputs[-1])[0].astype(float)
        return {
            "label": int(probabilities.argmax()),
            "probabilities": probabilities.tolist(),
            "activations": [outputs[shown][0].astype(float).tolist() for _, _, shown in blocks],
            "pixels": pixels.astype(float).tolist(),
        }

    return app


def dense_blocks(net: Network) -> list[tuple[int, str, int]]:
    """(units, activation, index of the layer output to show) for every hidden dense layer of ``net``.

    A dense layer's units are shown after everything up to the next layer with weights: its own
    activation, or the batch norm and activation layers that follow it.
    """
    blocks = []
    weighted = [i for i, layer in enumerate(net.layers) if isinstance(layer, Dense | Conv2D)]
    for i, following in zip(weighted[:-1], weighted[1:], strict=True):
        layer = net.layers[i]
        if not isinstance(layer, Dense):
            continue
        activation = layer.activation.name
        for between in net.layers[i + 1 : following]:
            activation = getattr(between, "activation", None) and between.activation.name or activation
        blocks.append((layer.units, activation, following - 1))
    return blocks


def parse_request(body: bytes) -> np.ndarray:
    """The (784,) float32 pixels a request body describes; raises BadRequest for anything malformed."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadRequest(
            400, 'the body must be JSON: {"image": "data:image/png;base64,..."} or {"pixels": [...]}'
        ) from None
    if not isinstance(payload, dict) or ("image" in payload) == ("pixels" in payload):
        raise BadRequest(422, 'send exactly one of "image" (a data URL) or "pixels" (784 numbers in 0..1)')
    if "image" in payload:
        return decode_image(payload["image"])
    return decode_pixels(payload["pixels"])


def decode_image(value: Any) -> np.ndarray:
    if not isinstance(value, str) or not value.startswith("data:image/") or ";base64," not in value:
        raise BadRequest(422, '"image" must be a data URL such as data:image/png;base64,...')
    try:
        raw = base64.b64decode(value.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(422, '"image" holds invalid base64') from None
    try:
        return load_digit(raw)
    except ImageError as exc:
        raise BadRequest(422, str(exc)) from None


def decode_pixels(value: Any) -> np.ndarray:
    n = SIDE * SIDE
    if not isinstance(value, list) or len(value) != n:
        raise BadRequest(422, f'"pixels" must be a list of {n} numbers (28×28, row by row)')
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise BadRequest(422, '"pixels" must hold only finite numbers')
    pixels = np.asarray(value, dtype=np.float32)
    if pixels.min() < 0.0 or pixels.max() > 1.0:
        raise BadRequest(422, '"pixels" must lie in 0..1 (0 = background, 1 = ink)')
    return pixels
