"""`yoloforge export`: the deployable bundle — the Go server compiled from serving/gateway, the chosen model as
ONNX, config.yaml, Dockerfiles, docker-compose.yml (api + redis + postgres) and a README.

The Go server runs ONNX Runtime in process, with the execution provider of the chosen engine: CPU, OpenVINO
(ONNX Runtime's OpenVINO build, whose libraries the bundle ships), CUDA or TensorRT. A chosen engine it cannot
run (PyTorch) is served as the same model and precision on ONNX Runtime, and the bundle says so.

The parts: toolchain (the server's build and ONNX Runtime's libraries), plan (what the server runs, its settings),
write (the bundle's files), docker (its image), delivery (its binary run natively, measured under load)."""

from yoloforge.serving.bundle.delivery import (
    DELIVERY_CLIENTS,
    DELIVERY_FLOOR,
    DELIVERY_S,
    bundle_process,
    check_bundle,
    delivery,
    measure_delivery,
    running,
    stage_times,
    stream_service_process,
)
from yoloforge.serving.bundle.docker import build_image
from yoloforge.serving.bundle.plan import ServerSettings, layout, plan_engine, server_cannot_run
from yoloforge.serving.bundle.toolchain import BundleError, build_server, gateway_digest, openvino_runtime, ort_library
from yoloforge.serving.bundle.write import Bundle, bundle_complete, export_bundle

__all__ = ["DELIVERY_CLIENTS", "DELIVERY_FLOOR", "DELIVERY_S", "Bundle", "BundleError", "ServerSettings",
           "build_image", "build_server", "bundle_complete", "bundle_process", "check_bundle", "delivery",
           "export_bundle", "gateway_digest", "layout", "measure_delivery", "openvino_runtime", "ort_library",
           "plan_engine", "running", "server_cannot_run", "stage_times", "stream_service_process"]
