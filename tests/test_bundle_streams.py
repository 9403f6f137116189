"""The bundle's stream service: tracking from the bundle's own files at the Go server's one origin. The service is
started as the image lays it out (streams/app on the path, the packages of streams/requirements.txt, no checkout:
`python -S` leaves out the site hooks that make the checkout importable), the server from the bundle's binary."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import bundle_server, free_port, wait_for

KEY = "stream-key"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, served_run) -> Path:
    from yoloforge.serving.bundle import ServerSettings, export_bundle

    out = tmp_path_factory.mktemp("bundle-streams") / "bundle"  # beside the shared run, not in it
    return export_bundle(served_run, out, settings=ServerSettings(max_batch_size=4)).out_dir


def blocker_packages(bundle: Path) -> Path:
    """A folder of stand-ins, one per installed package that the stream service's requirements.txt does not bring
    in, each failing its import with a message that says so: first on the path, they leave the service only what
    its image has."""
    blocker = bundle.parent / "not-in-the-image"
    if not blocker.is_dir():
        for name in outside_the_requirements(bundle / "streams" / "requirements.txt"):
            (blocker / name).mkdir(parents=True)
            (blocker / name / "__init__.py").write_text(
                f"raise ModuleNotFoundError('{name} is not in the bundle\\'s streams/requirements.txt')\n")
    return blocker


def image_layout_env(bundle: Path) -> dict[str, str]:
    """What the stream service's image runs with: its app folder and the packages of its requirements.txt (and
    theirs), nothing else (serving.bundle.stream_service_process's path, with the stand-ins first)."""
    paths = [str(blocker_packages(bundle)), str(bundle / "streams" / "app"), sysconfig.get_paths()["purelib"],
             sysconfig.get_paths()["platlib"]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "MPLCONFIGDIR": "/tmp/matplotlib"}


def outside_the_requirements(requirements: Path) -> set[str]:
    """Top-level import names of the installed distributions that the requirements do not bring in (their
    dependencies followed, extras left out)."""
    import re
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    wanted = {norm(line.split("==")[0]) for line in requirements.read_text().splitlines()
              if line and not line.startswith("#")}
    wanted |= {"opencv-python"}  # the headless build's twin, installed here in its place
    todo = list(wanted)
    while todo:
        try:
            needs = requires(todo.pop()) or []
        except PackageNotFoundError:
            continue
        for need in needs:
            if "extra ==" in need:
                continue
            dependency = norm(re.split(r"[ ;<>=!~\[(]", need, maxsplit=1)[0])
            if dependency not in wanted:
                wanted.add(dependency)
                todo.append(dependency)
    return {name for name, dists in packages_distributions().items()  # yoloforge: the bundle's own copy
            if name.isidentifier() and not name.startswith("_") and name != "yoloforge"
            and not any(norm(d) in wanted for d in dists)}


def test_the_stream_service_runs_from_the_bundles_files_alone(bundle):
    probe = subprocess.run([sys.executable, "-S", "-c", "import yoloforge, yoloforge.serving.streams.bundled; "
                            "print(yoloforge.__file__)"], env=image_layout_env(bundle), capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert Path(probe.stdout.strip()).is_relative_to(bundle / "streams" / "app")


def test_every_package_the_stream_service_imports_is_pinned_in_its_requirements(bundle):
    from yoloforge.serving.bundle.streams import DISTRIBUTIONS, third_party_imports

    pinned = {line.split("==")[0] for line in (bundle / "streams" / "requirements.txt").read_text().splitlines()
              if "==" in line}
    assert third_party_imports() <= set(DISTRIBUTIONS)
    assert {DISTRIBUTIONS[name] for name in third_party_imports()} <= pinned


def test_without_the_stream_service_the_bundles_spec_has_no_stream_route(served_run, tmp_path):
    import yaml
    from yoloforge.serving.bundle import ServerSettings, export_bundle

    out = export_bundle(served_run, tmp_path / "bundle", settings=ServerSettings(max_batch_size=4,
                                                                                  streams=False)).out_dir
    spec = yaml.safe_load((out / "openapi.yaml").read_text())
    assert "/v1/predict" in spec["paths"] and not [p for p in spec["paths"] if p.startswith("/v1/streams")]
    assert not (out / "streams").exists() and "streams:" not in (out / "docker-compose.yml").read_text()
    assert "streams" not in yaml.safe_load((out / "config.yaml").read_text())


@pytest.fixture(scope="module")
def origin(bundle, tmp_path_factory) -> Iterator[tuple[str, Path, str]]:
    """The bundle's server in front of its stream service, both native: (the one origin's URL, the tracks, the
    service's own URL, which only Prometheus scrapes)."""
    from yoloforge.serving.bundle import stream_service_process

    work = tmp_path_factory.mktemp("origin")
    with stream_service_process(bundle, work / "tracks", work / "streams.log", free_port(),
                                first_paths=[str(blocker_packages(bundle))]) as (_, service):
        env = {"YOLOFORGE_REDIS_ENABLED": "false", "YOLOFORGE_POSTGRES_ENABLED": "false", "YOLOFORGE_API_KEYS": KEY,
               "YOLOFORGE_STREAMS_URL": service}
        with bundle_server(bundle, env, work / "server.log") as server:
            yield server.url, work / "tracks", service


def tracked_by_yoloforge_track(served_run: Path, videos: list[Path], out: Path) -> None:
    """The same videos through `yoloforge track`'s local stream service on the run the bundle was made from."""
    from yoloforge.serving.streams.service import Inference, StreamJob, StreamService
    from yoloforge.serving.streams.sources import SourceSpec

    inference = Inference.from_run(served_run)
    service = StreamService(inference, out)
    try:
        for video in videos:
            service.add(StreamJob(SourceSpec(str(video)), name=video.stem))
        assert service.wait(120)
    finally:
        service.close()
        inference.close()


def test_two_videos_added_at_the_bundles_origin_are_tracked_as_yoloforge_track_tracks_them(origin, detector,
                                                                                             served_run, tmp_path):
    from yoloforge.serving.streams.evaluate import score

    from tests.test_streams import drifting_video

    url, tracks, _ = origin
    images = sorted((detector[1] / "images" / "val").glob("*.jpg"))[:2]
    videos = [drifting_video(image, tmp_path, f"drift-{i}", frames=30) for i, image in enumerate(images)]
    headers = {"Authorization": f"Bearer {KEY}"}
    for video in videos:
        added = httpx.post(f"{url}/v1/streams", json={"source": str(video), "name": video.stem}, headers=headers)
        assert added.status_code == 201, added.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = {v.stem: httpx.get(f"{url}/v1/streams/{v.stem}", headers=headers).json()["state"] for v in videos}
        if all(state == "finished" for state in states.values()):
            break
        time.sleep(0.5)
    assert all(state == "finished" for state in states.values()), states
    bundle = score(tmp_path, tracks, [v.stem for v in videos])["combined"]
    tracked_by_yoloforge_track(served_run, videos, tmp_path / "track")
    track = score(tmp_path, tmp_path / "track", [v.stem for v in videos])["combined"]
    # the same model, engine and tracker: the bundle's tracks score what `yoloforge track`'s do (measured: HOTA 0.68
    # both), and clear the HOTA bound `yoloforge track` is held to on such clips (tests/test_streams.py)
    assert bundle["HOTA"] >= track["HOTA"] - 0.02 and bundle["HOTA"] >= 0.5, (bundle, track)
    assert httpx.get(f"{url}/v1/streams", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_contract_fuzzer_finds_no_undocumented_answer_on_the_bundles_stream_routes(origin, bundle, tmp_path):
    from tests.contract import fuzz

    url, _, _ = origin
    ok, report = fuzz(url, {"Authorization": f"Bearer {KEY}"}, tmp_path, max_examples=20, streams=True,
                      spec_path=bundle / "openapi.yaml")
    assert ok, report


def test_the_dashboards_stream_panels_query_series_the_stream_service_exports(origin, bundle, detector, tmp_path):
    import json
    import re

    from tests.test_streams import drifting_video

    url, _, service = origin
    video = drifting_video(sorted((detector[1] / "images" / "val").glob("*.jpg"))[0], tmp_path, "loop", frames=10)
    headers = {"Authorization": f"Bearer {KEY}"}
    added = httpx.post(f"{url}/v1/streams", headers=headers,
                       json={"source": str(video), "name": "looping", "loop": True, "fps_target": 5})
    assert added.status_code == 201, added.text
    try:
        assert wait_for(lambda: "yoloforge_stream_keeps_up{" in httpx.get(f"{service}/metrics").text, 30)
        exported = httpx.get(f"{service}/metrics").text
    finally:
        httpx.delete(f"{url}/v1/streams/looping", headers=headers)
    dashboard = json.loads((bundle / "monitoring/grafana/dashboards/yoloforge.json").read_text())
    used = {name for p in dashboard["panels"] for t in p["targets"]
            for name in re.findall(r"\b(yoloforge_stream_\w+)", t["expr"])}
    assert used and all(name in exported for name in used), sorted(n for n in used if n not in exported)
