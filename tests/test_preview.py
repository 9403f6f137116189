"""The Ray Serve preview answers the HTTP contract (tests/contract_suite.py), gives the engine's answers and
batches concurrent requests."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_ray
from tests.contract_suite import ContractSuite, post
from tests.parity import Boxes, match_detections
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def served_run(tmp_path_factory, detector) -> Path:
    from tests.conftest import served_run_dir

    return served_run_dir(tmp_path_factory.mktemp("preview"), detector, batch_sizes=(4,))


@pytest.fixture(scope="module")
def preview_url(served_run):  # type: ignore[no-untyped-def]
    from yoloforge.serving import preview

    assert preview.use_haproxy_ingress(), "ray[serve] brings an HAProxy binary on Linux"
    shared_ray()
    url = preview.start(str(served_run), port=free_port(), max_batch_size=4, batch_wait_ms=10,
                        max_queued_requests=8, max_body_mb=1)
    yield url
    preview.stop()


@pytest.fixture(scope="module")
def api_url(preview_url: str) -> str:
    return preview_url


@pytest.fixture(scope="module")
def api_headers() -> dict:
    return {}


def test_predict_gives_the_engines_answer(preview_url, image_bytes, served_run):
    from yoloforge.engines.predictor import Predictor
    from yoloforge.serving.served import ServedModel

    served = ServedModel.from_run(served_run)
    image = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB"))
    expected = Predictor(served.load(), served.facts).predict([image], conf=0.05)[0]
    got = post(preview_url, image_bytes, conf=0.05).json()["detections"]
    # the preview's engine copies may run on another thread count: equal up to the last bits
    ours = Boxes.of([d["box"] for d in got], [d["class_id"] for d in got], [d["confidence"] for d in got])
    pairs = match_detections(ours, Boxes.of(expected.boxes, expected.classes, expected.scores), conf=0.05)
    assert pairs, "the parity check compared no boxes"
    for i, j in pairs:
        assert np.allclose(ours.xyxy[i], expected.boxes[j], atol=0.02)


def test_concurrent_requests_are_batched(preview_url):
    from yoloforge.serving.loadgen import run_load, synthetic_images

    result = asyncio.run(run_load(preview_url, synthetic_images(4, 128), concurrency=8, requests=48,
                                  duration=None))
    assert result.ok == 48 and not result.errors
    assert result.mean_batch is not None and result.mean_batch > 1.2



def test_a_cpu_engine_runs_one_copy_per_concurrent_batch_on_a_share_of_the_cores():
    from yoloforge.engines.base import EngineConfig
    from yoloforge.engines.lanes import engine_lanes

    assert engine_lanes(2, EngineConfig("onnxruntime", threads=4)) == (2, 2)
    assert engine_lanes(3, EngineConfig("openvino", threads=2)) == (2, 1)  # never more copies than cores
    assert engine_lanes(1, EngineConfig("onnxruntime", threads=4)) == (1, 4)


def test_a_layout_the_engines_stage_measured_is_the_one_run():
    from yoloforge.engines.base import EngineConfig
    from yoloforge.engines.lanes import engine_lanes

    assert engine_lanes(2, EngineConfig("onnxruntime", threads=1, lanes=4)) == (4, 1)
    assert engine_lanes(2, EngineConfig("openvino", lanes=1)) == (1, None)  # one copy on every core measured best


def test_gpu_and_pytorch_engines_are_shared_by_the_concurrent_batches():
    from yoloforge.engines.base import EngineConfig
    from yoloforge.engines.lanes import engine_lanes

    assert engine_lanes(2, EngineConfig("onnxruntime", device="cuda:0")) == (1, None)
    assert engine_lanes(2, EngineConfig("pytorch", threads=4)) == (1, None)


class TestPreviewContract(ContractSuite):
    """The HTTP contract (tests/contract_suite.py), against the Ray Serve preview."""
