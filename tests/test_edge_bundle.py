"""`yoloforge export --platform linux/arm64`: the Go server cross-compiled with cgo, ONNX Runtime's aarch64 library,
run under qemu-user laid out as its image lays it out, answering as the amd64 bundle of the same run does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from yoloforge.serving.bundle import ServerSettings

from tests.parity import Boxes, match_detections
from tests.services import free_port

KEY = "edge-key"
SETTINGS = ServerSettings(max_batch_size=4)  # the batch sizes the shared served run has files for
NO_SERVICES = {"YOLOFORGE_REDIS_ENABLED": "false", "YOLOFORGE_POSTGRES_ENABLED": "false", "YOLOFORGE_API_KEYS": KEY}


@pytest.fixture(scope="module")
def arm64():  # type: ignore[no-untyped-def]
    from yoloforge.serving.bundle.platform import PLATFORMS

    return PLATFORMS["linux/arm64"]


@pytest.fixture(scope="module")
def edge_export(tmp_path_factory, served_run) -> tuple[Path, str]:
    """`yoloforge export RUN --platform linux/arm64`, as a user runs it: the bundle and what the command printed."""
    out = tmp_path_factory.mktemp("edge") / "bundle"  # beside the shared run, not in it
    done = subprocess.run([sys.executable, "-m", "yoloforge.ray_app.cli", "export", str(served_run), "--platform",
                           "linux/arm64", "--out", str(out), "--max-batch-size", str(SETTINGS.max_batch_size)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return out, done.stdout


@pytest.fixture(scope="module")
def edge_bundle(edge_export) -> Path:
    return edge_export[0]


@pytest.fixture(scope="module")
def amd64_bundle(tmp_path_factory, served_run) -> Path:
    from yoloforge.serving.bundle import export_bundle

    return export_bundle(served_run, tmp_path_factory.mktemp("amd64") / "bundle", SETTINGS).out_dir


def image_layout(bundle: Path, root: Path) -> tuple[Path, dict[str, str]]:
    """The bundle's files where its Dockerfile's COPY lines put them (under root instead of /), and the
    environment of its ENV lines (their paths under root too): the binary to run and its environment."""
    text = (bundle / "Dockerfile").read_text().replace("\\\n", " ")
    for src, dst in re.findall(r"^COPY (\S+) (\S+)$", text, re.M):
        target = root / dst.lstrip("/")
        if (bundle / src).is_dir():
            shutil.copytree(bundle / src, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(bundle / src, target)
    env = {}
    for line in re.findall(r"^ENV (.+)$", text, re.M):
        for key, value in re.findall(r"(\w+)=(\S+)", line):
            env[key] = str(root / value.lstrip("/")) if value.startswith("/") else value
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.+\])$", text, re.M).group(1))[0]
    return root / entrypoint.lstrip("/"), env


def serve(command: list[str], env: dict[str, str], log: Path, ready_s: float) -> Iterator[str]:
    from yoloforge.serving.bundle import running

    port = free_port()
    env = {**os.environ, **env, **NO_SERVICES, "YOLOFORGE_LISTEN": f"127.0.0.1:{port}"}
    with running([*command, "serve"], env, log, f"http://127.0.0.1:{port}", "/readyz", what=command[-1],
                 ready_timeout_s=ready_s):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def emulated_url(edge_bundle, arm64, tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("image")
    binary, env = image_layout(edge_bundle, root)
    yield from serve(arm64.command(str(binary)), {**env, **arm64.emulation_env()}, root / "server.log", ready_s=300)


@pytest.fixture(scope="module")
def native_url(amd64_bundle, tmp_path_factory) -> Iterator[str]:
    from yoloforge.serving.bundle.platform import host

    root = tmp_path_factory.mktemp("native")
    binary, env = image_layout(amd64_bundle, root)
    assert host().native
    yield from serve([str(binary)], env, root / "server.log", ready_s=60)


def test_the_server_binary_is_built_for_arm64(edge_bundle):
    described = subprocess.run(["file", "-L", str(edge_bundle / "bin" / "yoloforge-server")], capture_output=True,
                               text=True, check=True).stdout
    assert "ARM aarch64" in described, described
    library = next((edge_bundle / "lib").glob("libonnxruntime.so.*"))
    assert "ARM aarch64" in subprocess.run(["file", "-L", str(library)], capture_output=True, text=True).stdout


def test_the_export_checks_the_arm64_binary_under_emulation_and_says_speed_is_measured_on_the_device(edge_export):
    printed = " ".join(edge_export[1].split())
    assert "Go server for linux/arm64" in printed
    assert "run under qemu-user emulation of linux/arm64" in printed  # it answered a validation image
    assert "Speed is not measured under emulation" in printed and "yoloforge-server bench" in printed


def test_the_arm64_bundle_says_what_was_checked_and_how_to_measure_it_on_the_device(edge_bundle):
    info = json.loads((edge_bundle / "bundle.json").read_text())
    assert info["platform"] == "linux/arm64" and info["config"]["engine"]["provider"] == "cpu"
    assert "FROM --platform=linux/arm64 " in (edge_bundle / "Dockerfile").read_text()
    assert "platform: linux/arm64" in (edge_bundle / "docker-compose.yml").read_text()
    assert not (edge_bundle / "Dockerfile.cuda").exists()  # the CUDA image's ONNX Runtime is x86-64's
    readme = (edge_bundle / "README.md").read_text()
    assert "qemu-user" in readme and "yoloforge-server bench" in readme and "Dockerfile.cuda" not in readme


def test_the_arm64_server_under_emulation_answers_as_the_amd64_bundle_does(emulated_url, native_url, detector):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "image/jpeg"}
    images = sorted((detector[1] / "images" / "val").glob("*.jpg"))[:3]
    compared = 0
    for image in images:
        answers = [httpx.post(f"{url}/v1/predict", content=image.read_bytes(), headers=headers, params={"conf": 0.1},
                              timeout=120) for url in (emulated_url, native_url)]
        assert [a.status_code for a in answers] == [200, 200], [a.text[:300] for a in answers]
        emulated, native = (Boxes.of([d["box"] for d in a.json()["detections"]],
                                     [d["class_id"] for d in a.json()["detections"]],
                                     [d["confidence"] for d in a.json()["detections"]]) for a in answers)
        compared += len(match_detections(emulated, native, conf=0.1, score_tol=2e-3))
    assert compared > 0, "the parity check compared no boxes"


def test_the_servers_own_bench_prints_its_table_and_writes_the_fastest_layout(amd64_bundle, tmp_path):
    import yaml

    bundle = Path(shutil.copytree(amd64_bundle, tmp_path / "bundle"))
    assert len(list((bundle / "samples").iterdir())) >= 3  # the validation images it times with
    before = yaml.safe_load((bundle / "config.yaml").read_text())
    done = subprocess.run([str(bundle / "bin" / "yoloforge-server"), "bench", "-config", str(bundle / "config.yaml"),
                           "-seconds", "0.5", "-clients", "4", "-write"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [[float(v) for v in line.split()] for line in done.stdout.splitlines()
            if re.fullmatch(r"\s*(\d+\s+){3}([\d.]+\s*){4}", line)]
    batches = {int(b) for b in before["model"]["files"]}
    assert {int(r[2]) for r in rows} == batches and all(r[3] > 0 and r[5] > 0 for r in rows), done.stdout
    workers, threads, batch = map(int, re.search(r"fastest here: workers (\d+), threads (\d+), batch (\d+)",
                                                 done.stdout).groups())
    fastest = max(rows, key=lambda r: (r[5], r[3]))
    assert (workers, threads, batch) == tuple(int(v) for v in fastest[:3])
    after = yaml.safe_load((bundle / "config.yaml").read_text())
    assert (after["engine"]["workers"], after["engine"]["threads"], after["batcher"]["max_batch_size"]) == \
        (workers, threads, batch)
    for section, keys in (("engine", ("workers", "threads")), ("batcher", ("max_batch_size",))):
        for key in keys:
            del before[section][key], after[section][key]
    assert after == before  # nothing else changed
    assert (bundle / "config.yaml").read_text().startswith("# yoloforge bundle of")  # its comments kept


def test_the_servers_bench_without_images_says_where_to_put_them(amd64_bundle, tmp_path):
    done = subprocess.run([str(amd64_bundle / "bin" / "yoloforge-server"), "bench", "-config",
                           str(amd64_bundle / "config.yaml"), "-images", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "-images DIR" in done.stderr and "Traceback" not in done.stderr


def test_a_jetson_bundle_runs_tensorrt_on_an_l4t_image_and_says_it_is_not_verified_on_a_device(served_run, tmp_path):
    import yaml
    from yoloforge.core.rundir import RunDir
    from yoloforge.serving.bundle import check_bundle, export_bundle
    from yoloforge.serving.bundle.platform import PLATFORMS

    bundle = export_bundle(served_run, tmp_path / "bundle", SETTINGS, platform=PLATFORMS["jetson"]).out_dir
    engine = yaml.safe_load((bundle / "config.yaml").read_text())["engine"]
    assert (engine["provider"], engine["fp16"], engine["cache_dir"]) == ("tensorrt", True, "/cache/tensorrt")
    dockerfile = (bundle / "Dockerfile").read_text()
    assert "FROM nvcr.io/nvidia/l4t-jetpack:r36" in dockerfile and "onnxruntime-gpu" in dockerfile
    assert "YOLOFORGE_ORT_LIBRARY=/app/lib/jetson/libonnxruntime.so" in dockerfile
    compose = yaml.safe_load((bundle / "docker-compose.yml").read_text())
    assert compose["services"]["api"]["runtime"] == "nvidia" and compose["services"]["api"]["platform"] == "linux/arm64"
    assert json.loads((bundle / "bundle.json").read_text())["dockerfile"] == "Dockerfile"  # what --build builds
    assert "tensorrt-cache:/cache/tensorrt" in compose["services"]["api"]["volumes"]
    assert "tensorrt-cache" in compose["volumes"] and "streams" not in compose["services"]
    assert not (bundle / "Dockerfile.cuda").exists() and not (bundle / "streams").exists()
    assert "not verified on a device" in (bundle / "README.md").read_text()
    assert "ARM aarch64" in subprocess.run(["file", "-L", str(bundle / "bin" / "yoloforge-server")],
                                           capture_output=True, text=True).stdout
    # the export's check: the arm64 binary and the model answer under emulation, on the CPU provider
    answer, delivered = check_bundle(bundle, RunDir(served_run).sample_image(), free_port(), load_s=5)
    assert "detections" in answer and delivered is None  # no speed measured under emulation
