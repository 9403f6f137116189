"""The bundle's stream service (video tracking at /v1/streams, behind the Go server): the few yoloforge modules it
runs, copied as they are into streams/app/, the packages they import pinned to the versions yoloforge was tested
with (streams/requirements.txt), and its own image. Nothing of a run directory, the search or Ray goes in."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import shutil
import sys
from pathlib import Path

# the stream service and what it imports (a test imports them alone, from the bundle, with no checkout on the path)
RUNTIME_MODULES = (
    "yoloforge.core", "yoloforge.core.atomic",
    "yoloforge.engines", "yoloforge.engines.base", "yoloforge.engines.lanes", "yoloforge.engines.predictor",
    "yoloforge.engines.processing", "yoloforge.engines.registry", "yoloforge.engines.ort_backend",
    "yoloforge.serving", "yoloforge.serving.http_common",
    "yoloforge.serving.streams", "yoloforge.serving.streams.api", "yoloforge.serving.streams.bundled",
    "yoloforge.serving.streams.decoding", "yoloforge.serving.streams.inference",
    "yoloforge.serving.streams.outputs", "yoloforge.serving.streams.service", "yoloforge.serving.streams.sources",
    "yoloforge.serving.streams.stream", "yoloforge.serving.streams.tracking",
)
# import name -> the distribution that provides it (opencv: the headless build, no X libraries in the image)
DISTRIBUTIONS = {"numpy": "numpy", "onnxruntime": "onnxruntime", "cv2": "opencv-python-headless", "PIL": "pillow",
                 "av": "av", "trackers": "trackers", "supervision": "supervision", "matplotlib": "matplotlib",
                 "fastapi": "fastapi", "starlette": "starlette", "pydantic": "pydantic", "uvicorn": "uvicorn",
                 "prometheus_client": "prometheus-client", "yaml": "pyyaml", "scipy": "scipy"}
# imported inside functions the stream service never calls: the bundle leaves them out (a test runs the service
# with each of them unimportable)
NOT_AT_RUNTIME = {"onnx": "ModelFacts.from_onnx (yoloforge track --model reads an .onnx's metadata)",
                  "ultralytics": "ModelFacts.from_checkpoint (a .pt's facts)",
                  "pyarrow": "atomic.write_parquet (a run's tables)"}
SERVICE_PORT = 8100  # inside the compose network only: the Go server is its one origin


def module_source(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, name
    return Path(spec.origin)


def write_service(bundle: Path) -> None:
    """streams/app/yoloforge/... (the runtime modules) and streams/requirements.txt into the bundle folder."""
    app = bundle / "streams" / "app"
    for name in RUNTIME_MODULES:
        parts = name.split(".")[1:]
        source = module_source(name)
        target = app.joinpath("yoloforge", *parts, "__init__.py") if source.name == "__init__.py" else \
            app.joinpath("yoloforge", *parts[:-1], f"{parts[-1]}.py")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (app / "yoloforge" / "__init__.py").write_text(
        '"""yoloforge\'s stream service, as a bundle carries it: the runtime modules only (no training code)."""\n')
    (bundle / "streams" / "requirements.txt").write_text(requirements())


def third_party_imports() -> set[str]:
    """Top-level names the runtime modules import that are neither yoloforge's nor the standard library's (nor
    one of NOT_AT_RUNTIME)."""
    found = set()
    for name in RUNTIME_MODULES:
        tree = ast.parse(module_source(name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {n for n in found if n != "yoloforge" and n not in sys.stdlib_module_names and n != "__future__"} - \
        set(NOT_AT_RUNTIME)


def requirements() -> str:
    """One pinned line per distribution the runtime imports, at the version installed here (what the suite ran);
    opencv's headless build takes the version of whichever OpenCV build is installed."""
    lines = ["# the bundle's stream service: the packages its modules import, at the versions yoloforge was tested "
             "with"]
    for distribution in sorted(set(DISTRIBUTIONS.values())):
        installed = distribution
        if distribution == "opencv-python-headless":
            installed = next((d for d in ("opencv-python-headless", "opencv-python") if _version(d)), distribution)
        version = _version(installed)
        lines.append(f"{distribution}=={version}" if version else distribution)
    return "\n".join(lines) + "\n"


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def streams_values(streams: bool, image: str, api_port: int, platform: str) -> dict[str, str]:
    """The stream service's parts of docker-compose.yml, prometheus.yml and README.md (empty without it)."""
    if not streams:
        return {"streams_env": "", "streams_service": "", "streams_volume": "", "streams_scrape": "",
                "streams_readme": ""}
    name, _, tag = image.rpartition(":")
    return {
        "streams_env": f"      YOLOFORGE_STREAMS_URL: http://streams:{SERVICE_PORT}\n",
        "streams_service": _STREAMS_SERVICE.format(image=f"{name}-streams:{tag}", platform=platform),
        "streams_volume": "  tracks:",
        "streams_scrape": _STREAMS_SCRAPE.format(port=SERVICE_PORT),
        "streams_readme": _STREAMS_README.format(port=SERVICE_PORT, api_port=api_port),
    }


# the stream service answers inside the compose network only: the API forwards /v1/streams to it behind its keys
_STREAMS_SERVICE = """  streams:
    build:
      context: .
      dockerfile: Dockerfile.streams
    image: {image}
    platform: {platform}
    volumes:
      - tracks:/data/tracks
      - ./videos:/videos:ro
    restart: unless-stopped"""

_STREAMS_SCRAPE = """  - job_name: yoloforge-streams
    metrics_path: /metrics
    static_configs:
      - targets: ["streams:{port}"]"""

_STREAMS_README = """## Video streams

`/v1/streams` tracks objects in video streams on the same model, origin and keys as `/v1/predict`: the API
forwards the routes to the stream service (`streams` in docker-compose.yml: `Dockerfile.streams`, Python with
`streams/requirements.txt` and yoloforge's runtime modules in `streams/app/`). Frames never pass through the API:
a stream names its source, and the service reads it.

```bash
mkdir -p videos && cp entrance.mp4 videos/      # files: ./videos is /videos in the service; or rtsp:// URLs
curl -H "Authorization: Bearer <key>" -H "Content-Type: application/json" \\
  -d '{{"source": "/videos/entrance.mp4", "name": "entrance", "fps_target": 25}}' http://localhost:{api_port}/v1/streams
curl -H "Authorization: Bearer <key>" http://localhost:{api_port}/v1/streams/entrance   # state, FPS, tracks, counts
```

Each stream's MOT tracks, JSON lines and counts go to the `tracks` volume (`/data/tracks/<stream>/`). Its figures
are Prometheus series of the service (`yoloforge_stream_fps`, `yoloforge_stream_keeps_up`,
`yoloforge_stream_frames_dropped_total`, ...), scraped as `streams:{port}` and drawn on the dashboard's stream
panels. Without Docker: `PYTHONPATH=streams/app python -m yoloforge.serving.streams.bundled config.yaml --out
tracks` (after `pip install -r streams/requirements.txt`) beside the server, which finds it at `streams.url`.
"""
