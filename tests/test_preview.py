"""The Ray Serve preview answers the HTTP contract: shapes, every error answer, overload, batching."""

from __future__ import annotations

import asyncio
import io
import socket
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.contract import response_schema, validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def served_run(tmp_path_factory, detector) -> Path:
    from ray_app.pipeline import bench_run
    from tests.conftest import build_run_dir

    run_dir = build_run_dir(tmp_path_factory.mktemp("preview"), detector,
                            {"backends": ["onnxruntime"], "precisions": ["fp32"], "batch_sizes": [4],
                             "min_time_s": 0.2, "val_images": 8})
    bench_run(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def preview_url(served_run):  # type: ignore[no-untyped-def]
    import ray

    from serving import preview

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    url = preview.start(str(served_run), port=free_port(), max_batch_size=4, batch_wait_ms=10,
                        max_queued_requests=8, max_body_mb=1)
    yield url
    preview.stop()
    ray.shutdown()


@pytest.fixture(scope="module")
def image_bytes(detector) -> bytes:
    path = sorted((detector[1] / "images" / "val").glob("*.jpg"))[0]
    return path.read_bytes()


def post(url: str, body: bytes, content_type: str = "image/jpeg", **params) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", content=body, headers={"Content-Type": content_type}, params=params,
                      timeout=30)


def test_predict_answers_the_detect_schema_in_original_pixels(preview_url, image_bytes):
    r = post(preview_url, image_bytes, conf=0.01)
    assert r.status_code == 200, r.text
    body = r.json()
    validate(body, "#/components/schemas/PredictResponse")
    assert body["task"] == "detect" and body["cached"] is False
    assert body["image"] == {"width": 128, "height": 128}
    assert body["detections"], "the trained detector finds shapes at conf 0.01"
    for det in body["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 128
        assert det["class_name"] in ("circle", "square", "triangle")


def test_predict_gives_the_engines_answer(preview_url, image_bytes, served_run):
    from engines.predictor import Predictor
    from serving.served import ServedModel

    served = ServedModel.from_run(served_run)
    image = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB"))
    expected = Predictor(served.load(), served.facts).predict([image], conf=0.05)[0]
    got = post(preview_url, image_bytes, conf=0.05).json()["detections"]
    assert len(got) == len(expected.boxes)
    for det, box in zip(got, expected.boxes, strict=True):
        assert np.allclose(det["box"], box, atol=0.02)


def test_multipart_upload_is_accepted(preview_url, image_bytes):
    r = httpx.post(f"{preview_url}/v1/predict", files={"image": ("a.jpg", image_bytes, "image/jpeg")}, timeout=30)
    assert r.status_code == 200, r.text
    validate(r.json(), "#/components/schemas/PredictResponse")


def test_png_and_non_square_images_are_answered_in_their_own_size(preview_url):
    image = np.random.default_rng(0).integers(0, 255, (90, 200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    r = post(preview_url, buf.getvalue(), "image/png")
    assert r.status_code == 200 and r.json()["image"] == {"width": 200, "height": 90}


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg", 400, "bad_image"),
    (b"", "image/jpeg", 400, "bad_image"),
    (b"{}", "application/json", 415, "unsupported_media_type"),
    (b"hello", "text/plain", 415, "unsupported_media_type"),
    (b"x" * (1024 * 1024 + 10), "image/jpeg", 413, "too_large"),
])
def test_bad_requests_get_their_documented_error(preview_url, body, content_type, status, code):
    r = post(preview_url, body, content_type)
    assert r.status_code == status
    validate(r.json(), "#/components/schemas/Error")
    assert r.json()["error"]["code"] == code


@pytest.mark.parametrize("params", [{"conf": "2"}, {"iou": "-0.1"}, {"max_det": "0"}, {"conf": "abc"}])
def test_out_of_range_parameters_are_bad_parameter(preview_url, image_bytes, params):
    r = post(preview_url, image_bytes, **params)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"


def test_model_health_readiness_and_metrics(preview_url):
    model = httpx.get(f"{preview_url}/v1/model").json()
    validate(model, "#/components/schemas/ModelInfo")
    assert model["engine"]["backend"] == "onnxruntime" and model["names"] == ["circle", "square", "triangle"]
    assert httpx.get(f"{preview_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{preview_url}/readyz")
    assert ready.status_code == 200
    validate(ready.json(), "#/components/schemas/Readiness")
    metrics = httpx.get(f"{preview_url}/metrics").text
    assert "yoloforge_batch_size_bucket" in metrics and "yoloforge_requests_total" in metrics


def test_unknown_route_is_a_json_404(preview_url):
    r = httpx.get(f"{preview_url}/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_concurrent_requests_are_batched(preview_url):
    from loadgen import run_load, synthetic_images

    result = asyncio.run(run_load(preview_url, synthetic_images(4, 128), concurrency=8, requests=48,
                                  duration=None))
    assert result.ok == 48 and not result.errors
    assert result.mean_batch is not None and result.mean_batch > 1.2


def test_overload_is_answered_at_once_with_retry_after(preview_url):
    from loadgen import run_load, synthetic_images

    # 8 in flight per replica and 8 queued: 64 clients overflow the bound; the excess is refused, not hung
    result = asyncio.run(run_load(preview_url, synthetic_images(4, 128), concurrency=64, requests=256,
                                  duration=None, timeout_s=20))
    assert result.errors.get("503", 0) > 0 and set(result.errors) == {"503"}
    assert result.ok > 0 and result.max_ms < 20_000
    r = None
    for _ in range(3):  # see one refusal's headers
        burst = asyncio.run(_burst(preview_url, 64))
        r = next((x for x in burst if x.status_code == 503), None)
        if r is not None:
            break
    assert r is not None and r.headers.get("retry-after") == "1"
    validate(r.json(), "#/components/schemas/Error")


async def _burst(url: str, n: int) -> list[httpx.Response]:
    body = jpeg(np.zeros((128, 128, 3), np.uint8))
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(client.post(f"{url}/v1/predict", content=body,
                                                  headers={"Content-Type": "image/jpeg"}) for _ in range(n)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2048), content_type=st.sampled_from(["image/jpeg", "image/png", "image/webp",
                                                                    "application/octet-stream"]),
       conf=st.one_of(st.none(), st.floats(-1, 2, allow_nan=False).map(str), st.text(max_size=4)))
def test_any_request_gets_a_documented_answer_never_a_500(preview_url, body, content_type, conf):
    params = {} if conf is None else {"conf": conf}
    r = post(preview_url, body, content_type, **params)
    ref = response_schema("/v1/predict", "post", r.status_code)
    assert ref is not None and r.status_code != 500, (r.status_code, r.text)
    validate(r.json(), ref)
