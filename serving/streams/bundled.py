"""The stream service as a bundle runs it: `python -m yoloforge.serving.streams.bundled config.yaml` reads the
bundle's own config.yaml (the Go server's) and model files, runs the streams on ONNX Runtime and answers the
streams HTTP API behind the Go server, which forwards /v1/streams there on its own origin and keys.

It needs the bundle's files and the packages of its streams/requirements.txt alone: no run directory, no
training code, no Ray (the bundle carries this module and the few it imports: serving/bundle/streams.py)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from yoloforge.engines.base import EngineConfig, ModelFacts, onnx_metadata
from yoloforge.engines.lanes import engine_lanes
from yoloforge.engines.predictor import measure_call_ms
from yoloforge.engines.registry import cpu_count
from yoloforge.serving.streams.inference import Inference

DEFAULT_LISTEN = "127.0.0.1:8100"  # natively, beside the server; the image listens on its network
DEFAULT_OUT = "/data/tracks"  # the image's volume for each stream's outputs


def model_facts(doc: dict[str, Any], model_file: Path) -> ModelFacts:
    """config.yaml's task, names and size, with the head's kind and stride from the file's Ultralytics metadata."""
    custom = onnx_metadata(model_file)
    model = doc["model"]
    return ModelFacts(task=model["task"], names=[str(n) for n in model["names"]], imgsz=int(model["imgsz"]),
                      stride=int(custom.get("stride", 32)), end2end=custom.get("end2end") == "True")


def engine_configs(doc: dict[str, Any], root: Path) -> tuple[dict[int, Path], EngineConfig]:
    """The model file per batch size (paths relative to root, config.yaml's folder) and the engine configuration
    of the largest batch, as the Go server runs them: the CUDA and TensorRT providers on their device, OpenVINO's
    CPU provider as ONNX Runtime's own CPU one (the runtime's pip build has no OpenVINO provider), the configured
    threads."""
    files = {int(batch): root / path for batch, path in doc["model"]["files"].items()}
    engine = doc["engine"]
    provider = engine.get("provider", "cpu")
    gpu = provider in ("cuda", "tensorrt")
    device = f"cuda:{int(engine.get('device_id', 0))}" if gpu else "cpu"
    options = (("provider", provider),) if gpu else (("spin", False),)  # a server's cores are shared
    precision = "int8" if engine.get("precision") == "int8" else ("fp16" if gpu and engine.get("fp16") else "fp32")
    config = EngineConfig("onnxruntime", precision, max(files), int(doc["model"]["imgsz"]),
                          int(engine.get("threads") or 0) or None, device, options)
    return files, config


def inference_from_bundle(config_path: Path) -> Inference:
    """The engine lanes of the bundle's model: as many copies as engine.workers (the preview's rule decided it at
    export), each with a model per batch size the bundle holds."""
    from yoloforge.engines.ort_backend import OnnxRuntimeEngine

    doc = yaml.safe_load(config_path.read_text())
    files, config = engine_configs(doc, config_path.parent)
    workers = max(1, int(doc["engine"].get("workers") or 1))
    lanes, threads = engine_lanes(2, replace(config, lanes=workers))
    if config.device == "cpu" and threads is None:
        threads = max(1, cpu_count() // lanes)  # threads 0: the cores shared out between the copies, as in Go
    cache = Path(os.environ.get("YOLOFORGE_TRT_CACHE", "/tmp/yoloforge-trt-cache"))
    copies = [{batch: OnnxRuntimeEngine(replace(config, batch=batch, threads=threads), path, cache)
               for batch, path in files.items()} for _ in range(lanes)]
    facts = model_facts(doc, files[max(files)])
    return Inference(copies, facts, config.imgsz, config.batch,
                     measure_call_ms(copies[0], (3, config.imgsz, config.imgsz)))


def main(argv: list[str] | None = None) -> int:
    import uvicorn
    from yoloforge.serving.streams.api import build_app
    from yoloforge.serving.streams.service import StreamService

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="the bundle's config.yaml")
    parser.add_argument("--listen", default=os.environ.get("YOLOFORGE_STREAMS_LISTEN", DEFAULT_LISTEN),
                        help="host:port (default 127.0.0.1:8100; YOLOFORGE_STREAMS_LISTEN)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("YOLOFORGE_STREAMS_OUT", DEFAULT_OUT)),
                        help="where each stream's outputs go (default /data/tracks; YOLOFORGE_STREAMS_OUT)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    service = StreamService(inference_from_bundle(args.config), args.out)
    try:
        uvicorn.run(build_app(service), host=host or "0.0.0.0", port=int(port), log_level="warning")
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
