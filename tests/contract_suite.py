"""The HTTP contract (serving/openapi.yaml), as tests that run against both servers: the Ray Serve preview
(tests/test_preview.py) and the Go server of the bundle (tests/test_gateway.py). A module that subclasses
ContractSuite provides the fixtures `api_url` (the server, started with a 1 MB body limit and a small queue),
`api_headers` (what a request needs to be authorised) and `image_bytes` (a JPEG of the synthetic val set)."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.contract import fuzz, validate

# examples per operation and phase in the suite; scripts/fuzz_contract.py runs longer
FUZZ_EXAMPLES = 20


def jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def post(url: str, body: bytes, content_type: str = "image/jpeg", headers: dict | None = None,
         **params) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", content=body, headers={"Content-Type": content_type, **(headers or {})},
                      params=params, timeout=30)


def _key(headers: dict) -> str | None:
    return headers.get("Authorization", "").removeprefix("Bearer ") or None


async def _burst(url: str, headers: dict, n: int, seed: int) -> list[httpx.Response]:
    rng = np.random.default_rng(1000 + seed)  # n images never sent before: none is a cache hit
    bodies = [jpeg(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)) for _ in range(n)]
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(client.post(f"{url}/v1/predict", content=body,
                                                  headers={"Content-Type": "image/jpeg", **headers})
                                      for body in bodies))



class ContractSuite:
    """The contract's tests. A server's test module subclasses it as Test<Server>Contract and provides the
    fixtures; pytest collects every test of the subclass, so none can be left off by hand."""

    def test_predict_answers_the_detect_schema_in_original_pixels(self, api_url, api_headers, image_bytes):
        r = post(api_url, image_bytes, headers=api_headers, conf=0.01)
        assert r.status_code == 200, r.text
        body = r.json()
        validate(body, "#/components/schemas/PredictResponse")
        assert body["task"] == "detect"
        assert body["image"] == {"width": 128, "height": 128}
        assert body["detections"], "the trained detector finds shapes at conf 0.01"
        for det in body["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 128
            assert det["class_name"] in ("circle", "square", "triangle")

    def test_multipart_upload_is_accepted(self, api_url, api_headers, image_bytes):
        r = httpx.post(f"{api_url}/v1/predict", files={"image": ("a.jpg", image_bytes, "image/jpeg")},
                       headers=api_headers, timeout=30)
        assert r.status_code == 200, r.text
        validate(r.json(), "#/components/schemas/PredictResponse")

    def test_png_and_non_square_images_are_answered_in_their_own_size(self, api_url, api_headers):
        image = np.random.default_rng(0).integers(0, 255, (90, 200, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        r = post(api_url, buf.getvalue(), "image/png", headers=api_headers)
        assert r.status_code == 200 and r.json()["image"] == {"width": 200, "height": 90}

    @pytest.mark.parametrize(("body", "content_type", "status", "code"), [
        (b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg", 400, "bad_image"),
        (b"", "image/jpeg", 400, "bad_image"),
        (b"{}", "application/json", 415, "unsupported_media_type"),
        (b"hello", "text/plain", 415, "unsupported_media_type"),
        (b"x" * (1024 * 1024 + 10), "image/jpeg", 413, "too_large"),
    ])
    def test_bad_requests_get_their_documented_error(self, api_url, api_headers, body, content_type, status, code):
        r = post(api_url, body, content_type, headers=api_headers)
        assert r.status_code == status
        validate(r.json(), "#/components/schemas/Error")
        assert r.json()["error"]["code"] == code

    def test_multipart_form_without_an_image_field_is_415(self, api_url, api_headers, image_bytes):
        r = httpx.post(f"{api_url}/v1/predict", files={"photo": ("a.jpg", image_bytes, "image/jpeg")},
                       headers=api_headers, timeout=30)
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"

    @pytest.mark.parametrize("params", [{"conf": "2"}, {"iou": "-0.1"}, {"max_det": "0"}, {"conf": "abc"}])
    def test_out_of_range_parameters_are_bad_parameter(self, api_url, api_headers, image_bytes, params):
        r = post(api_url, image_bytes, headers=api_headers, **params)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"

    def test_model_health_readiness_and_metrics(self, api_url, api_headers):
        model = httpx.get(f"{api_url}/v1/model", headers=api_headers).json()
        validate(model, "#/components/schemas/ModelInfo")
        assert model["engine"]["backend"] in ("onnxruntime", "openvino")
        assert model["names"] == ["circle", "square", "triangle"]
        assert httpx.get(f"{api_url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{api_url}/readyz")
        assert ready.status_code == 200
        validate(ready.json(), "#/components/schemas/Readiness")
        metrics = httpx.get(f"{api_url}/metrics").text
        assert "yoloforge_batch_size_bucket" in metrics and "yoloforge_requests_total" in metrics

    def test_unknown_route_is_a_json_404(self, api_url):
        r = httpx.get(f"{api_url}/v2/nothing")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    def test_overload_is_answered_at_once_with_retry_after(self, api_url, api_headers):
        from yoloforge.serving.loadgen import run_load, synthetic_images

        # the servers under test queue a few requests only: 64 clients overflow the bound and the excess is refused.
        # Every image is new: a server with an answer cache would answer repeats without queueing them.
        result = asyncio.run(run_load(api_url, synthetic_images(256, 128), concurrency=64, requests=256,
                                      duration=None, timeout_s=20, api_key=_key(api_headers)))
        assert result.errors.get("503", 0) > 0 and set(result.errors) == {"503"}
        assert result.ok > 0 and result.max_ms < 20_000
        r = None
        for attempt in range(3):  # see one refusal's headers
            burst = asyncio.run(_burst(api_url, api_headers, 64, seed=attempt))
            r = next((x for x in burst if x.status_code == 503), None)
            if r is not None:
                break
        assert r is not None and r.headers.get("retry-after") == "1"
        validate(r.json(), "#/components/schemas/Error")

    def test_a_contract_fuzzer_finds_no_defect(self, api_url, api_headers, tmp_path):
        ok, report = fuzz(api_url, api_headers, tmp_path, max_examples=FUZZ_EXAMPLES)
        assert ok, report
