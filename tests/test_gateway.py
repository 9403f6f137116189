"""The Go server of the exported bundle, run natively from the bundle as a user would, with real Redis and
PostgreSQL on loopback: the HTTP contract (tests/contract_suite.py), the same answers as Ultralytics, the cache,
API keys, the inference log, and serving on when Redis and Postgres go away."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.contract_suite import ContractSuite, post
from tests.parity import Boxes, match_detections
from tests.services import bundle_server, missing_services, postgres_server, psql, redis_server

pytestmark = pytest.mark.skipif(missing_services() is not None, reason=str(missing_services()))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, served_run) -> Path:
    from yoloforge.serving.bundle import export_bundle

    out = tmp_path_factory.mktemp("gateway") / "bundle"  # beside the shared run, not in it
    return export_bundle(served_run, out, settings=_export_settings()).out_dir


# every field away from its default, so the test below sees each one reach the files it names
EXPORT_SETTINGS_ARGS = {"port": 8181, "max_batch_size": 4, "batch_wait_ms": 3.0, "max_queue": 8,
                        "max_body_mb": 1.0, "cache_ttl_s": 90}  # concurrent_batches: the lanes measured win


def _export_settings():  # type: ignore[no-untyped-def]
    from yoloforge.serving.bundle import ServerSettings

    return ServerSettings(**EXPORT_SETTINGS_ARGS)


@pytest.fixture(scope="module")
def services(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("services")
    with redis_server(root / "redis") as redis, postgres_server(root / "postgres") as postgres:
        yield redis, postgres


@pytest.fixture(scope="module")
def api_key(bundle, services) -> str:
    _, postgres = services
    out = subprocess.run([str(bundle / "bin" / "yoloforge-server"), "keys", "create", "-name", "tests", "-config",
                          str(bundle / "config.yaml")], env={"YOLOFORGE_POSTGRES_DSN": postgres.url},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def server(bundle, services, api_key, tmp_path_factory):  # type: ignore[no-untyped-def]
    redis, postgres = services
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {"YOLOFORGE_REDIS_ADDR": redis.url, "YOLOFORGE_POSTGRES_DSN": postgres.url, "YOLOFORGE_MAX_BODY_MB": "1",
           "YOLOFORGE_ENGINE_THREADS": "2"}
    with bundle_server(bundle, env, log) as service:
        yield service
    assert service.process.returncode == 0, f"no clean shutdown on SIGTERM:\n{log.read_text()[-2000:]}"


@pytest.fixture(scope="module")
def api_headers(api_key: str) -> dict:
    return {"Authorization": f"Bearer {api_key}"}


def test_the_bundle_is_configured_with_the_export_settings(bundle):
    import yaml

    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert config["listen"] == ":8181" and config["limits"]["max_body_mb"] == 1.0
    assert config["batcher"]["max_batch_size"] == 4 and config["batcher"]["batch_wait"] == "3ms"
    assert config["batcher"]["max_queue"] == 8
    assert config["redis"] == {**config["redis"], "enabled": True, "ttl": "90s"}
    assert "EXPOSE 8181" in (bundle / "Dockerfile").read_text()
    assert "EXPOSE 8181" in (bundle / "Dockerfile.cuda").read_text()
    assert '"$${YOLOFORGE_PORT:-8181}:8181"'.replace("$$", "$") in (bundle / "docker-compose.yml").read_text()
    env = (bundle / ".env.example").read_text()
    assert "YOLOFORGE_PORT=8181" in env and "YOLOFORGE_CACHE_TTL=90s" in env and "YOLOFORGE_MAX_BODY_MB=1\n" in env
    assert '"api:8181"' in (bundle / "monitoring" / "prometheus.yml").read_text()
    assert "localhost:8181/v1/predict" in (bundle / "README.md").read_text()


def test_the_docs_list_every_override_the_server_reads(bundle):
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("make_docs_overrides", root / "scripts" / "make_docs_overrides.py")
    assert spec and spec.loader
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    listed = subprocess.run([str(bundle / "bin" / "yoloforge-server"), "config", "-list"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert docs.documented((root / "docs" / "bundle.md").read_text()) == listed, \
        "docs/bundle.md is stale: run python scripts/make_docs_overrides.py"


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_bundle_holds_everything_a_deployment_needs(bundle):
    for name in ("bin/yoloforge-server", "config.yaml", "Dockerfile", "Dockerfile.cuda", "docker-compose.yml",
                 ".env.example", "schema.sql", "README.md", "model/labels.txt", "model/model-b1-fp32.onnx",
                 "model/model-b4-fp32.onnx", "openapi.yaml"):
        assert (bundle / name).is_file(), name
    assert list((bundle / "lib").glob("libonnxruntime.so.*"))
    import yaml

    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert config["engine"]["provider"] == "cpu" and config["engine"]["workers"] >= 1  # engines/lanes.py's rule

    compose = yaml.safe_load((bundle / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "redis", "postgres"} <= set(services)
    assert all("healthcheck" in services[name] for name in ("api", "redis", "postgres"))
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    dashboard = json.loads((bundle / "monitoring/grafana/dashboards/yoloforge.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for series in ("yoloforge_requests_total", "yoloforge_request_seconds_bucket", "yoloforge_batch_size_sum",
                   "yoloforge_cache_requests_total"):
        assert series in exprs
    assert (bundle / "monitoring/grafana/provisioning/datasources/prometheus.yml").is_file()
    assert compose["services"]["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "deploy" not in compose["services"]["api"], "a CPU selection reserves no GPU"
    # the stream service answers through the API alone: its own port is not published (tests/test_bundle_streams.py)
    assert services["streams"]["build"]["dockerfile"] == "Dockerfile.streams" and "ports" not in services["streams"]
    assert services["api"]["environment"]["YOLOFORGE_STREAMS_URL"] == "http://streams:8100"
    scraped = yaml.safe_load((bundle / "monitoring/prometheus.yml").read_text())["scrape_configs"]
    assert ["streams:8100"] in [job["static_configs"][0]["targets"] for job in scraped]
    gpu = yaml.safe_load((bundle / "docker-compose.cuda.yml").read_text())["services"]["api"]
    assert gpu["build"]["dockerfile"] == "Dockerfile.cuda" and gpu["deploy"]["resources"]["reservations"]["devices"]
    dockerfile = (bundle / "Dockerfile").read_text()
    assert "COPY bin/" in dockerfile and "COPY . " not in dockerfile  # no source, no dataset in the image
    assert "CREATE TABLE IF NOT EXISTS api_keys" in (bundle / "schema.sql").read_text()


def test_grafana_dashboard_queries_series_the_server_exports(api_url, api_headers, image_bytes, bundle):
    import re

    post(api_url, image_bytes, headers=api_headers)  # every labelled series has a sample
    exported = httpx.get(f"{api_url}/metrics").text
    dashboard = json.loads((bundle / "monitoring/grafana/dashboards/yoloforge.json").read_text())
    used = {name for p in dashboard["panels"] for t in p["targets"]
            for name in re.findall(r"\b(yoloforge_\w+|process_\w+)", t["expr"])}
    used -= {n for n in used if n.startswith("yoloforge_gpu_")}  # GPU servers only (internal/gpu's tests)
    used -= {n for n in used if n.startswith("yoloforge_stream_")}  # the stream service's (test_bundle_streams.py)
    assert used and all(name in exported for name in used), sorted(n for n in used if n not in exported)


def test_answers_match_ultralytics_on_the_same_model(api_url, api_headers, bundle, detector, tmp_path):
    from ultralytics import YOLO

    model = YOLO(str(bundle / "model" / "model-b1-fp32.onnx"), task="detect")
    sources = sorted((detector[1] / "images" / "val").glob("*.jpg"))[:6]
    compared = 0
    for i, src in enumerate(sources):
        image = np.asarray(Image.open(src).convert("RGB"))
        if i % 3 == 1:  # non-square, up- and down-scaled
            image = np.asarray(Image.fromarray(image).resize((200, 120)))
        elif i % 3 == 2:
            image = np.asarray(Image.fromarray(image).resize((90, 160)))
        path = tmp_path / f"img{i}.png"
        path.write_bytes(png(image))
        expected = model.predict(str(path), imgsz=128, conf=0.1, verbose=False)[0].boxes
        got = post(api_url, path.read_bytes(), "image/png", headers=api_headers, conf=0.1).json()["detections"]
        ours = Boxes.of([d["box"] for d in got], [d["class_id"] for d in got], [d["confidence"] for d in got])
        theirs = Boxes.of(expected.xyxy.numpy(), expected.cls.numpy(), expected.conf.numpy())
        pairs = match_detections(ours, theirs, conf=0.1, score_tol=2e-3)
        for i, j in pairs:
            assert np.allclose(ours.xyxy[i], theirs.xyxy[j], atol=0.5), (ours.xyxy[i], theirs.xyxy[j])
        compared += len(pairs)
    assert compared > 0, "the parity check compared no boxes"


def test_repeat_request_is_answered_from_the_cache(api_url, api_headers, image_bytes):
    first = post(api_url, image_bytes, headers=api_headers, conf=0.3, max_det=7)
    # answers are stored off the request path: a repeat request finds one a Redis round trip later
    deadline = time.monotonic() + 5
    while True:
        second = post(api_url, image_bytes, headers=api_headers, conf=0.3, max_det=7)
        if second.json().get("cached") or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert first.status_code == second.status_code == 200
    assert first.json()["cached"] is False and second.json()["cached"] is True
    assert second.json()["detections"] == first.json()["detections"]
    other = post(api_url, image_bytes, headers=api_headers, conf=0.31, max_det=7)
    assert other.json()["cached"] is False, "other parameters are another answer"


def test_requests_without_a_valid_key_are_401(api_url, image_bytes):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        r = post(api_url, image_bytes, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{api_url}/v1/model").status_code == 401
    assert httpx.get(f"{api_url}/healthz").status_code == 200  # health and metrics stay open


def test_predictions_are_logged_in_postgres(api_url, api_headers, image_bytes, services):
    _, postgres = services
    before = int(psql(postgres.url, "SELECT count(*) FROM inference_log"))
    for _ in range(3):
        assert post(api_url, image_bytes, headers=api_headers).status_code == 200
    deadline = time.monotonic() + 10
    while int(psql(postgres.url, "SELECT count(*) FROM inference_log")) < before + 3:
        assert time.monotonic() < deadline, "log rows did not arrive within 10 s"
        time.sleep(0.2)
    row = psql(postgres.url, "SELECT status, model_version, key_id FROM inference_log ORDER BY id DESC LIMIT 1")
    status, version, key_id = row.split("|")
    assert status == "200" and len(version) == 12 and len(key_id) == 12
    assert psql(postgres.url, "SELECT count(*) FROM api_keys WHERE name = 'tests'") == "1"


def test_a_stopped_redis_and_postgres_do_not_stop_serving(api_url, api_headers, services):
    redis, postgres = services
    redis.stop()
    postgres.stop()
    rng = np.random.default_rng(3)
    for _ in range(3):  # new images: no cache to lean on
        body = png(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
        r = post(api_url, body, "image/png", headers=api_headers)
        assert r.status_code == 200 and r.json()["cached"] is False
    deadline = time.monotonic() + 10
    while True:
        deps = httpx.get(f"{api_url}/readyz").json()["dependencies"]
        if deps == {"cache": "down", "database": "down"}:
            break
        assert time.monotonic() < deadline, deps
        time.sleep(0.3)


# --- segment and classify: a bundle made by hand around the exported model, no Redis or Postgres ---------------


def _hand_bundle(tmp: Path, weights: Path, task: str) -> Path:
    """The server binary, ONNX Runtime and a batch-1 ONNX of the model, with a config.yaml written here."""
    import shutil

    import yaml
    from yoloforge.engines.base import ModelFacts
    from yoloforge.engines.export import export_onnx
    from yoloforge.serving.bundle import build_server, ort_library

    from tests.conftest import IMGSZ

    bundle = tmp / "bundle"
    (bundle / "bin").mkdir(parents=True)
    shutil.copy2(build_server(), bundle / "bin" / "yoloforge-server")
    onnx = export_onnx(weights, IMGSZ, 1, tmp / "models")
    facts = ModelFacts.from_checkpoint(weights, imgsz=IMGSZ)
    (bundle / "config.yaml").write_text(yaml.safe_dump({
        "ort_library": str(ort_library()),
        "model": {"name": task, "version": "0" * 12, "task": task, "imgsz": IMGSZ, "names": facts.names,
                  "files": {1: str(onnx)}},
        "batcher": {"max_batch_size": 1}, "redis": {"enabled": False}, "postgres": {"enabled": False},
        "auth": {"required": False}}))
    return bundle


def _served(tmp: Path, weights: Path, task: str):  # type: ignore[no-untyped-def]
    from tests.services import bundle_server

    return bundle_server(_hand_bundle(tmp, weights, task), {}, tmp / "server.log")


def test_segment_answers_match_ultralytics_boxes_and_masks(segmenter, tmp_path):
    import cv2
    from ultralytics import YOLO

    weights, data = segmenter
    sources = sorted((data / "images" / "val").glob("*.jpg"))[:6]
    model = YOLO(str(weights))
    compared = 0
    with _served(tmp_path, weights, "segment") as server:
        for src in sources:
            image = np.asarray(Image.open(src).convert("RGB"))
            expected = model.predict(image[..., ::-1], imgsz=128, rect=False, conf=0.05, verbose=False,
                                     device="cpu")[0]
            got = post(server.url, png(image), "image/png", conf=0.05).json()["detections"]
            ours = Boxes.of([d["box"] for d in got], [d["class_id"] for d in got], [d["confidence"] for d in got])
            theirs = Boxes.of(expected.boxes.xyxy.numpy(), expected.boxes.cls.numpy(), expected.boxes.conf.numpy())
            pairs = match_detections(ours, theirs, conf=0.05)
            if expected.masks is None:
                continue
            masks = expected.masks.data.numpy() > 0.5  # at input size, which is the image's (128 px, square)
            for i, j in pairs:
                # the answer's polygon is the mask's largest outer outline (serving/openapi.yaml): compared with
                # the same outline of Ultralytics' mask, so a mask in several parts or with holes compares alike
                contours, _ = cv2.findContours(masks[j].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                theirs_outline = np.zeros(masks[j].shape, np.uint8)
                if contours:
                    cv2.fillPoly(theirs_outline, [max(contours, key=cv2.contourArea)], 1)
                drawn = np.zeros(masks[j].shape, np.uint8)
                cv2.fillPoly(drawn, [np.asarray(got[i]["polygon"], np.int32)], 1)
                a, b = theirs_outline > 0, drawn > 0
                inter, union = (a & b).sum(), (a | b).sum()
                assert inter / max(union, 1) >= 0.7, (src, inter, union)
                compared += 1
    assert compared >= 3, "the parity check compared too few masks"


def test_classify_top_classes_match_ultralytics(classifier, tmp_path):
    from ultralytics import YOLO

    weights, data = classifier
    sources = sorted(p for p in (data / "val").rglob("*") if p.suffix.lower() in (".jpg", ".png"))[:8]
    model = YOLO(str(weights))
    with _served(tmp_path, weights, "classify") as server:
        for src in sources:
            image = np.asarray(Image.open(src).convert("RGB"))
            if src == sources[0]:
                image = np.ascontiguousarray(np.repeat(image, 2, axis=0))  # tall: the centre crop matters
            expected = model.predict(image[..., ::-1], imgsz=128, verbose=False, device="cpu")[0].probs
            got = post(server.url, png(image), "image/png", top_k=3).json()
            assert len(got["top"]) == 3
            assert abs(got["top"][0]["confidence"] - float(expected.top1conf)) < 1e-3
            # the same top class, unless Ultralytics' own runner-up is within the score tolerance of it
            assert expected.data.numpy()[got["top"][0]["class_id"]] >= float(expected.top1conf) - 1e-3


def test_build_without_a_docker_engine_says_so_and_keeps_the_bundle(bundle, monkeypatch):
    from yoloforge.serving.bundle import BundleError, build_image

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no engine, wherever this runs
    with pytest.raises(BundleError, match="no Docker engine answers here") as err:
        build_image(bundle)
    assert "docker compose build" in str(err.value)
    assert (bundle / "bin" / "yoloforge-server").is_file()


class TestGatewayContract(ContractSuite):
    """The HTTP contract (tests/contract_suite.py), against the bundle's Go server."""


def test_the_built_server_is_kept_under_its_source_toolchain_and_platform_in_the_build_cache(tmp_path, monkeypatch):
    import shutil

    from yoloforge.serving.bundle import toolchain
    from yoloforge.serving.bundle.platform import PLATFORMS, host

    monkeypatch.setenv("YOLOFORGE_BUILD_CACHE", str(tmp_path / "build"))
    source = tmp_path / "gateway"
    shutil.copytree(toolchain.GATEWAY, source, ignore=shutil.ignore_patterns("testdata"))
    monkeypatch.setattr(toolchain, "GATEWAY", source)
    go = shutil.which("go") or "go"
    before = toolchain.server_build_path(go)
    assert before.is_relative_to(tmp_path / "build")
    main = next(source.rglob("main.go"))
    main.write_text(main.read_text() + "\n// changed\n")
    changed = toolchain.server_build_path(go)
    other = next(p for p in PLATFORMS.values() if p != host())
    elsewhere = toolchain.server_build_path(go, other)  # an amd64 build is never reused for arm64, nor the reverse
    monkeypatch.setattr(toolchain, "_go_version", lambda go: "go9.9")
    assert len({before, changed, elsewhere, toolchain.server_build_path(go)}) == 4  # a stale build is never used


def test_the_build_cache_is_apart_from_the_weights_cache_only_when_asked(tmp_path, monkeypatch):
    from yoloforge.serving.bundle.toolchain import build_cache

    monkeypatch.delenv("YOLOFORGE_BUILD_CACHE")
    monkeypatch.setenv("YOLOFORGE_CACHE", str(tmp_path / "cache"))
    assert build_cache() == tmp_path / "cache" / "build"
    monkeypatch.setenv("YOLOFORGE_BUILD_CACHE", str(tmp_path / "elsewhere"))
    assert build_cache() == tmp_path / "elsewhere"
