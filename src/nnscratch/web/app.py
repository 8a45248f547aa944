"""A FastAPI app that serves one page to draw a digit on, and a JSON API that reads it with one or more models.

    GET  /api/models    → {"default": NAME, "models": [the description of every model, as /api/model]}
    GET  /api/model     → the first model: its name, spec, dense layers, feature-map layers, parameter
                          count and recorded test accuracy
    POST /api/predict   {"image": "data:image/png;base64,..."} or {"pixels": [784 numbers in 0..1]},
                        and optionally "model": NAME (default: the first model)
                        → {"model", "label", "probabilities", "activations", "feature_maps", "pixels"}

What "activations" and "feature_maps" hold is described in ``nnscratch.web.served``.

Every malformed request gets a 4xx answer with a JSON ``detail`` message; bodies over
``MAX_BODY_BYTES`` are refused with 413 before they are parsed.

Predicting never runs on the event loop: parsing the body, decoding the image, the forward pass and
encoding the answer run in the app's one prediction thread, so the loop keeps accepting connections
and serving the page while a convnet reads a drawing.  The answer is encoded with orjson, which
writes NumPy arrays directly.  ``nnscratch serve --workers N`` runs N processes, each building its
app with :func:`app_from_environment`.  bench/README.md has the figures behind these choices.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from nnscratch.attack import METHODS as ATTACK_METHODS
from nnscratch.attack import PGD_STEPS
from nnscratch.errors import NNScratchError
from nnscratch.explain import METHODS as EXPLAIN_METHODS
from nnscratch.images import BLANK, SIDE, ImageError, load_digit
from nnscratch.network import Network
from nnscratch.web.served import ServedModel, load_models

MAX_BODY_BYTES = 1_000_000  # a 280×280 canvas as PNG is ~10-30 kB; this leaves ample room
STATIC = files("nnscratch.web") / "static"
MODELS_VARIABLE = "NNSCRATCH_SERVE_MODELS"  # the model paths, as a JSON list, for each worker process
MAX_ATTACK_STEPS = 100  # PGD steps one request may ask for: each is a forward and a backward pass
ANSWER_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SERIALIZE_DATACLASS
BLANK_ANSWER = f"image: {BLANK}"  # what a blank image gets from load_digit (bytes are named "image")


class BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def create_app(models: Network | Sequence[ServedModel], *, model_name: str = "model") -> FastAPI:
    """The web app for one network (named ``model_name``) or for several served models, the first the default.

    Every network must take 28×28 = 784 inputs.
    """
    served = [ServedModel(model_name, models)] if isinstance(models, Network) else list(models)
    if not served:
        raise ValueError("the web app needs at least one model")
    by_name = {model.name: model for model in served}
    if len(by_name) != len(served):
        raise ValueError("every served model needs a name of its own")
    infos = [orjson.dumps(model.info()) for model in served]
    catalogue = b'{"default":%s,"models":[%s]}' % (orjson.dumps(served[0].name), b",".join(infos))

    app = FastAPI(title="nnscratch", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(NNScratchError)
    async def model_failed(request: Request, exc: NNScratchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=500)  # the model's fault, not the request's

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a safety net
        return JSONResponse({"detail": "the request could not be processed"}, status_code=400)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/api/models")
    async def list_models() -> Response:
        return Response(catalogue, media_type="application/json")

    @app.get("/api/model")
    async def model() -> Response:
        return Response(infos[0], media_type="application/json")

    def answer(body: bytes) -> bytes:
        """Parse, predict and encode: the CPU-bound part of a request, run in the prediction thread."""
        name, pixels, payload = parse_request(body, by_name, default=served[0].name)
        method = parse_explain(payload)
        reading = by_name[name].read(pixels)
        if method is None:
            return orjson.dumps(reading, option=orjson.OPT_SERIALIZE_NUMPY)
        attribution = by_name[name].explain(pixels, method)
        return orjson.dumps({**dataclasses.asdict(reading), "attribution": attribution}, option=ANSWER_OPTIONS)

    def attacked(body: bytes) -> bytes:
        name, pixels, payload = parse_request(body, by_name, default=served[0].name)
        epsilon, method, steps = parse_attack(payload)
        return orjson.dumps(by_name[name].attack(pixels, epsilon, method, steps), option=ANSWER_OPTIONS)

    # One thread per process: the work holds the GIL most of the time, so more threads only contend
    # for it with each other and with the event loop (bench/README.md: Starlette's pool of 40 costs a
    # third more CPU per request and raises the p99); processes (--workers) are what use more cores.
    predictor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nnscratch-predict")

    @app.post("/api/predict")
    async def predict(request: Request) -> Response:
        body = await read_body(request)
        result = await asyncio.get_running_loop().run_in_executor(predictor, answer, body)
        return Response(result, media_type="application/json")

    @app.post("/api/attack")
    async def attack(request: Request) -> Response:
        body = await read_body(request)
        result = await asyncio.get_running_loop().run_in_executor(predictor, attacked, body)
        return Response(result, media_type="application/json")

    return app


def app_from_environment() -> FastAPI:
    """The app for the model paths in ``$NNSCRATCH_SERVE_MODELS`` (a JSON list): the factory each of
    ``nnscratch serve --workers N``'s worker processes builds its own app with."""
    return create_app(load_models(json.loads(os.environ[MODELS_VARIABLE])))


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed MAX_BODY_BYTES."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BadRequest(413, f"the request body must be at most {MAX_BODY_BYTES:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(413, f"the request body must be at most {MAX_BODY_BYTES:,} bytes")
    return bytes(body)


def parse_request(body: bytes, models: dict[str, Any], *, default: str) -> tuple[str, np.ndarray, dict[str, Any]]:
    """(model name, (784,) float32 pixels, the whole body) from a request body; raises BadRequest for anything
    malformed."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadRequest(
            400, 'the body must be JSON: {"image": "data:image/png;base64,..."} or {"pixels": [...]}'
        ) from None
    if not isinstance(payload, dict) or ("image" in payload) == ("pixels" in payload):
        raise BadRequest(422, 'send exactly one of "image" (a data URL) or "pixels" (784 numbers in 0..1)')
    name = payload.get("model", default)
    if not isinstance(name, str) or name not in models:
        got = repr(name[:100]) if isinstance(name, str) else "not a string"
        raise BadRequest(422, f'"model" must name a served model: {", ".join(models)}; got {got}')
    if "image" in payload:
        return name, decode_image(payload["image"]), payload
    return name, decode_pixels(payload["pixels"]), payload


def parse_explain(payload: dict[str, Any]) -> str | None:
    """The explanation method a predict body asks for with ``"explain"``, or None."""
    method = payload.get("explain")
    if method is None:
        return None
    if not isinstance(method, str) or method not in EXPLAIN_METHODS:
        raise BadRequest(422, f'"explain" must be one of {", ".join(EXPLAIN_METHODS)}')
    return method


def parse_attack(payload: dict[str, Any]) -> tuple[float, str, int]:
    """(ε, method, steps) of an attack body: ε in [0, 1] (default 0.1), fgsm or pgd (default), at most
    MAX_ATTACK_STEPS steps (default 40): a request costs a bounded time."""
    epsilon = payload.get("epsilon", 0.1)
    if type(epsilon) not in (int, float) or not 0 <= epsilon <= 1:
        raise BadRequest(422, '"epsilon" must be a number in [0, 1] (the largest change of a pixel)')
    method = payload.get("method", "pgd")
    if method not in ATTACK_METHODS:
        raise BadRequest(422, f'"method" must be one of {", ".join(ATTACK_METHODS)}')
    steps = payload.get("steps", PGD_STEPS)
    if type(steps) is not int or not 1 <= steps <= MAX_ATTACK_STEPS:
        raise BadRequest(422, f'"steps" must be a whole number from 1 to {MAX_ATTACK_STEPS}')
    return float(epsilon), method, steps


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
    # The set of the values' types is found in C, ten times faster than isinstance on each value;
    # bool is a subclass of int, so testing exact types also refuses true/false.
    if not set(map(type, value)) <= {int, float}:
        raise BadRequest(422, '"pixels" must hold only finite numbers')
    try:
        pixels = np.asarray(value, dtype=np.float64)
    except OverflowError:  # an integer beyond float64's range
        raise BadRequest(422, '"pixels" must hold only finite numbers') from None
    if not np.isfinite(pixels).all():
        raise BadRequest(422, '"pixels" must hold only finite numbers')
    if pixels.min() < 0.0 or pixels.max() > 1.0:
        raise BadRequest(422, '"pixels" must lie in 0..1 (0 = background, 1 = ink)')
    if not pixels.any():
        raise BadRequest(422, BLANK_ANSWER)
    return pixels.astype(np.float32)
