"""A bundle whose selection chose OpenVINO serves OpenVINO: the Go server runs ONNX Runtime's OpenVINO build (the
libraries the bundle ships), answers the HTTP contract (tests/contract_suite.py) and gives the answers the
engines stage's own OpenVINO engine gives. Redis and PostgreSQL are off here: tests/test_gateway.py covers them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.contract_suite import ContractSuite, post
from tests.parity import Boxes, match_detections
from tests.services import bundle_server

API_KEY = "openvino-tests-key"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, detector) -> Path:
    from tests.conftest import served_run_dir

    return served_run_dir(tmp_path_factory.mktemp("gateway-openvino"), detector, backend="openvino")


@pytest.fixture(scope="module")
def bundle(run_dir) -> Path:
    from yoloforge.serving.bundle import ServerSettings, export_bundle

    return export_bundle(run_dir, settings=ServerSettings(max_batch_size=4, max_queue=8)).out_dir


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {"YOLOFORGE_REDIS_ENABLED": "false", "YOLOFORGE_POSTGRES_ENABLED": "false", "YOLOFORGE_API_KEYS": API_KEY,
           "YOLOFORGE_MAX_BODY_MB": "1", "YOLOFORGE_ENGINE_THREADS": "1", "YOLOFORGE_ENGINE_WORKERS": "2"}
    with bundle_server(bundle, env, log) as service:
        yield service
    assert service.process.returncode == 0, f"no clean shutdown on SIGTERM:\n{log.read_text()[-2000:]}"


@pytest.fixture(scope="module")
def api_headers() -> dict:
    return {"Authorization": f"Bearer {API_KEY}"}


def test_the_bundle_of_an_openvino_selection_runs_the_openvino_provider_with_its_libraries(bundle, run_dir):
    import json

    assert json.loads((run_dir / "selection.json").read_text())["chosen"]["backend"] == "openvino"
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert config["engine"]["provider"] == "openvino"
    lib = bundle / config["ort_library"]
    assert lib.is_file() and (lib.parent / "libopenvino_intel_cpu_plugin.so").is_file()
    assert "OpenVINO" in (bundle / "README.md").read_text()
    compose = yaml.safe_load((bundle / "docker-compose.yml").read_text())
    assert "deploy" not in compose["services"]["api"], "OpenVINO runs on the CPU: no GPU is reserved"
    assert "Dockerfile.cuda" not in json.dumps(compose)


def test_two_engine_workers_on_a_cpu_are_listed_up_by_readyz(api_url):
    import httpx

    ready = httpx.get(f"{api_url}/readyz").json()
    assert ready["ready"] and [w["state"] for w in ready["workers"]] == ["up", "up"]
    assert all("threads 1" in w["name"] for w in ready["workers"])


def test_model_info_names_openvino(api_url, api_headers):
    import httpx

    assert httpx.get(f"{api_url}/v1/model", headers=api_headers).json()["engine"]["backend"] == "openvino"


def test_answers_match_the_engines_stage_openvino_engine(api_url, api_headers, run_dir, detector, tmp_path):
    from yoloforge.engines.predictor import Predictor
    from yoloforge.serving.served import ServedModel

    served = ServedModel.from_run(run_dir)
    assert served.config.backend == "openvino"
    predictor = Predictor(served.load(batch=1), served.facts)
    compared = 0
    for i, src in enumerate(sorted((detector[1] / "images" / "val").glob("*.jpg"))[:6]):
        image = np.asarray(Image.open(src).convert("RGB"))
        if i % 2:  # non-square
            image = np.asarray(Image.fromarray(image).resize((200, 120)))
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        got = post(api_url, buf.getvalue(), "image/png", headers=api_headers, conf=0.1).json()["detections"]
        expected = predictor.predict([image], conf=0.1)[0]
        ours = Boxes.of([d["box"] for d in got], [d["class_id"] for d in got], [d["confidence"] for d in got])
        theirs = Boxes.of(expected.boxes, expected.classes, expected.scores)
        pairs = match_detections(ours, theirs, conf=0.1, score_tol=5e-3)
        for a, b in pairs:
            assert np.allclose(ours.xyxy[a], theirs.xyxy[b], atol=0.5), (ours.xyxy[a], theirs.xyxy[b])
        compared += len(pairs)
    assert compared > 0, "the parity check compared no boxes"


class TestOpenVINOGatewayContract(ContractSuite):
    """The HTTP contract (tests/contract_suite.py), against the bundle's Go server on OpenVINO."""
