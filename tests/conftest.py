from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("COLUMNS", "200")  # before rich's console is created: no wrapped lines in CLI output
# every Ray a test starts listens on loopback only (Ray's "no multi-node" switch makes it bind 127.0.0.1)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# a Ray started without an address is this process's own, never a cluster another test (or test worker) started
# with `ray start` (which ray.init would otherwise join through /tmp/ray/ray_current_cluster)
os.environ.setdefault("RAY_ADDRESS", "local")
# what the bundle is built from (the compiled Go server, ONNX Runtime's OpenVINO build) is kept across tests and
# suite runs, apart from each test's YOLOFORGE_CACHE: each part is named by its inputs, so none is ever stale
os.environ.setdefault("YOLOFORGE_BUILD_CACHE", str(Path(__file__).resolve().parent.parent / ".build-cache"))

from yoloforge.ray_app.intake.synth import synth_dataset

_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process at once with pytest's own status, after every report is written.

    This one process hosts many Ray driver sessions in turn (the CLI's in-process runs, Serve, Tune) beside
    OpenVINO, ONNX Runtime and torch, and native threads of earlier sessions outlive ray.shutdown() (gcs client
    io, grpc event engine, Tune's tensorboardX writers). Once in CI the interpreter's exit crashed after every test
    had passed (exit 139 after "275 passed"; not reproduced here in a full run, three Ray-heavy partial runs and
    30 small Tune runs), most likely C++ static destructors racing such a thread: Ray ends its own worker
    processes with os._exit for that reason. Nothing is left to check by then; a crash while tests run is still
    reported (scripts/test.sh sets PYTHONFAULTHANDLER)."""
    if _EXIT_STATUS in config.stash and "PYTEST_XDIST_WORKER" not in os.environ:  # a worker reports to its
        sys.stdout.flush()                                                          # controller after this
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])


TRAINED_FIXTURES = {"detector", "segmenter", "classifier"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_ray: the test starts (or stops) a Ray of its own, so the suite's shared "
                                       "Ray is shut down first")


# the longest modules first: on two worker processes (scripts/test.sh) each is started early rather than left to
# run alone at the end (the demo alone is about 3-5 minutes)
LONGEST_FIRST = ("test_demo.py", "test_bench_scripts.py", "test_search.py", "test_pipeline_faults.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on a trained fixture model are slow too (training it takes a minute): `-m "not slow"` is the fast
    lane that trains nothing."""
    for item in items:
        if TRAINED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


# --- one local Ray for the whole suite --------------------------------------------------------------------------
# Starting a local Ray costs 5-8 s on two cores. ray_session (ray_app/ray_session.py) joins a Ray already running in
# the process and leaves it up, so the in-process tests that run stages share this one; a test that leaves an
# actor or a trial holding CPUs gets it shut down after it, so the next test never waits on what it left.


def shared_ray() -> None:
    """Start the suite's local Ray (as a user's run starts one: loopback, no dashboard) unless one runs."""
    import ray
    from yoloforge.ray_app.ray_session import init_options

    if not ray.is_initialized():
        ray.init(**init_options(None, dashboard=False))


def stop_shared_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _free_ray_resources() -> dict[str, float]:
    import ray

    free = ray.available_resources()
    return {k: free.get(k, 0.0) for k in ("CPU", "GPU")}


def _ray_released(before: dict[str, float], timeout_s: float = 10.0) -> bool:
    """The CPUs and GPUs free when the test began are free again (actors and trials end asynchronously; what a
    module's fixture holds across its tests, e.g. the preview's replicas, was held already)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        free = _free_ray_resources()
        if all(free[k] >= before[k] for k in before):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


@pytest.fixture(scope="session", autouse=True)
def _shared_ray_ends_with_the_session():
    yield
    stop_shared_ray()


@pytest.fixture(autouse=True)
def _shared_ray_for_slow_tests(request: pytest.FixtureRequest):
    if request.node.get_closest_marker("own_ray"):
        stop_shared_ray()
        yield
        return
    if request.node.get_closest_marker("slow"):
        shared_ray()
    ray_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    before = _free_ray_resources() if ray_up else None
    yield
    if before is not None and sys.modules["ray"].is_initialized() and not _ray_released(before):
        sys.modules["ray"].shutdown()  # what this test left running would starve the next one


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> content hash of every file under root: proves a check left the user's files alone."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def detect_ds(tmp_path: Path) -> Path:
    return synth_dataset(tmp_path / "detect", "detect", n_train=10, n_val=5, imgsz=64, seed=1)


@pytest.fixture
def segment_ds(tmp_path: Path) -> Path:
    return synth_dataset(tmp_path / "segment", "segment", n_train=10, n_val=5, imgsz=64, seed=2)


@pytest.fixture
def classify_ds(tmp_path: Path) -> Path:
    return synth_dataset(tmp_path / "classify", "classify", n_train=12, n_val=6, imgsz=64, seed=3)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights cache per test, so no test sees another's downloads (the build cache is shared: see above)."""
    monkeypatch.setenv("YOLOFORGE_CACHE", str(tmp_path / "cache"))


IMGSZ = 128  # the trained fixtures' input size


def train_fixture_model(tmp: Path, task: str, epochs: int, init: Path | None = None) -> tuple[Path, Path]:
    """A small model trained on the synthetic shapes; init: weights to start from (matching layers)."""
    from ultralytics import YOLO

    data = synth_dataset(tmp / task, task, n_train=48, n_val=16, imgsz=IMGSZ, seed=7)
    model = YOLO({"detect": "yolo11n.yaml", "segment": "yolo11n-seg.yaml", "classify": "yolo11n-cls.yaml"}[task])
    if init is not None:
        model.load(str(init))
    model.train(data=str(data if task == "classify" else data / "data.yaml"), epochs=epochs, imgsz=IMGSZ, batch=8,
                nbs=8, optimizer="AdamW", lr0=0.002, mosaic=0.0, workers=0, plots=False, amp=False, device="cpu",
                project=str(tmp / "train"), name=task, exist_ok=True, seed=0, deterministic=True, verbose=False)
    return Path(model.trainer.best), data


def trained_once(tmp_path_factory: pytest.TempPathFactory, name: str, train) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A trained fixture model (or a served run: anything two paths name), made by the first of the suite's worker
    processes (pytest -n) that needs it and read by the others; in one process, made here."""
    import fcntl
    import json

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return train(tmp_path_factory.mktemp(name))
    # one lock and one result per name, in the folder every worker's temporary folder sits in
    shared = tmp_path_factory.getbasetemp().parent / f"trained-{name}"
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "paths.json"
        if not done.is_file():
            weights, data = train(shared / "work")
            done.write_text(json.dumps([str(weights), str(data)]))
        weights, data = json.loads(done.read_text())
    return Path(weights), Path(data)


@pytest.fixture(scope="session")
def detector(tmp_path_factory) -> tuple[Path, Path]:
    return trained_once(tmp_path_factory, "detector", lambda tmp: train_fixture_model(tmp, "detect", 40))


@pytest.fixture(scope="session")
def segmenter(tmp_path_factory, detector) -> tuple[Path, Path]:
    # from the detector's weights (same shapes, same seed): 15 epochs give box mAP50 ~0.4 and confident masks,
    # where 15 from scratch gave no score above 0.01 (nothing a parity test can compare clearly)
    return trained_once(tmp_path_factory, "segmenter",
                        lambda tmp: train_fixture_model(tmp, "segment", 15, init=detector[0]))


@pytest.fixture(scope="session")
def classifier(tmp_path_factory) -> tuple[Path, Path]:
    return trained_once(tmp_path_factory, "classifier", lambda tmp: train_fixture_model(tmp, "classify", 5))


def build_run_dir(tmp_path: Path, detector: tuple[Path, Path], engines: dict, targets: dict | None = None) -> Path:
    """A run directory as intake and search leave it: job.yaml, the clean dataset, best/best.pt."""
    from yoloforge.ray_app.spec import parse_job
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.intake import stage_intake

    weights, data = detector
    spec = parse_job({"name": "eng", "model": "yolo11n.yaml", "data": {"path": str(data)}, "runs_dir": str(tmp_path),
                      "search": {"imgsz": IMGSZ}, "targets": targets or {}, "resources": {"dashboard": False},
                      # ranking through the bundle is tests/test_engines.py's to cover (about 10 s a config)
                      "engines": {"min_time_s": 0.3, "val_images": 16, "bundle_candidates": 0, **engines}})
    stage_intake(RunState(spec))
    (spec.run_dir / "best").mkdir()
    shutil.copy2(weights, spec.run_dir / "best" / "best.pt")
    return spec.run_dir


def served_run_dir(tmp_path: Path, detector: tuple[Path, Path], backend: str = "onnxruntime",
                   batch_sizes: tuple[int, ...] = (1, 4)) -> Path:
    """A run directory through the engines stage on one backend in fp32: what a server or a stream serves."""
    from yoloforge.ray_app.pipeline import bench_run

    shared_ray()

    run_dir = build_run_dir(tmp_path, detector, {"backends": [backend], "precisions": ["fp32"],
                                                 "batch_sizes": list(batch_sizes), "min_time_s": 0.2,
                                                 "val_images": 8})
    bench_run(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory, detector):  # type: ignore[no-untyped-def]
    """served_runs(backend, batch_sizes) -> a run directory through the engines stage, built once per session for
    each configuration and shared by every module that serves one (gateway, streams, preview, every_field, the bench
    smoke runs). Shared read-only: a test that writes into one fails the session here; one that must change a run
    copies it first (shutil.copytree)."""
    built: dict[tuple[str, tuple[int, ...]], tuple[Path, dict[str, str]]] = {}

    def get(backend: str = "onnxruntime", batch_sizes: tuple[int, ...] = (1, 4)) -> Path:
        key = (backend, tuple(batch_sizes))
        if key not in built:
            name = f"served-{backend}-" + "-".join(map(str, key[1]))
            run_dir, _ = trained_once(tmp_path_factory, name,  # one build for both worker processes
                                      lambda tmp: (served_run_dir(tmp, detector, backend, key[1]), tmp))
            built[key] = (run_dir, tree_digest(run_dir))
        return built[key][0]

    yield get
    written = [str(run_dir) for run_dir, digest in built.values() if tree_digest(run_dir) != digest]
    assert not written, f"a test wrote into a shared served run (copy it first): {written}"


@pytest.fixture(scope="session")
def served_run(served_runs) -> Path:  # type: ignore[no-untyped-def]
    """The trained detector through the engines stage on ONNX Runtime fp32, batches 1 and 4."""
    return served_runs()


@pytest.fixture
def make_run_dir(tmp_path: Path, detector: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    """make_run_dir(engines={...}, targets={...}) -> a run directory holding the trained detector."""
    return lambda engines, targets=None: build_run_dir(tmp_path, detector, engines, targets)


# --- what the contract suite (tests/contract_suite.py) needs from every server's module -----------------------


@pytest.fixture(scope="module")
def image_bytes(detector) -> bytes:  # type: ignore[no-untyped-def]
    """A JPEG of the synthetic validation set, as a client would send it."""
    return sorted((detector[1] / "images" / "val").glob("*.jpg"))[0].read_bytes()


@pytest.fixture(scope="module")
def api_url(server) -> str:  # type: ignore[no-untyped-def]
    """The server under test: each server's module provides `server` (the preview's module its own api_url)."""
    return server.url
