"""Stage 5: the deployable bundle (`yoloforge export RUN_DIR`): the Go server, the model, Docker files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.ports import free_port
from yoloforge.core.rundir import RunDir
from yoloforge.engines.delivery_ranking import server_cost_factor
from yoloforge.engines.selection import THROUGH_BUNDLE, Selection
from yoloforge.ray_app.console import console
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict, file_digest
from yoloforge.serving.answers import describe_answer
from yoloforge.serving.bundle import DELIVERY_CLIENTS, DELIVERY_FLOOR, DELIVERY_S


def stage_export(state: RunState, out: Path | None = None, *, build: bool = False, check: bool = True,
                 keep: bool = False) -> Path:
    """Write the bundle (into out, else the run's bundle/), start its binary to answer one image and measure it
    under load (check; a kept bundle only answers), and build its image if asked. Returns the bundle's folder."""
    from yoloforge.serving.bundle import BundleError, build_image, check_bundle, export_bundle

    run = state.run
    bundle_dir = out or run.bundle
    settings = state.spec.export.server()
    platform = state.spec.export.target_platform()
    console.rule("[bold]5 export[/bold]")
    if keep:
        console.print(f"export: {bundle_dir} was written from the current selection.json, export settings and "
                      f"server source; kept (re-export with `yoloforge export {run}`)")
    else:
        try:
            with console.status("writing the bundle (compiling the Go server the first time takes a minute)"):
                bundle = export_bundle(run.path, bundle_dir, settings, platform=platform)
        except BundleError as err:
            raise YoloforgeError(str(err)) from None
        for note in bundle.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
        engine = bundle.config["engine"]
        console.print(f"[green]Bundle written[/green] to {bundle_dir}: Go server for {platform.name} (ONNX Runtime, "
                      f"{engine['provider']} execution provider, {engine['precision']}, {engine.get('workers', 1)} "
                      "engine worker(s)), Dockerfile, docker-compose.yml (api + redis + postgres)")
    if check:
        image = run.sample_image()
        if image is not None:
            # a kept bundle was measured under load when it was written (delivered.json): it answers one image
            load_s = 0.0 if keep else DELIVERY_S
            try:
                with console.status("starting the bundle's server, sending it one image"
                                    + (f", then {load_s:g} s of load from {DELIVERY_CLIENTS} clients" if load_s
                                       else "")):
                    answer, delivered = check_bundle(bundle_dir, image, free_port(), load_s=load_s,
                                                     clients=DELIVERY_CLIENTS)
            except BundleError as err:
                raise YoloforgeError(f"the bundle's server did not answer: {err}") from None
            how = "run natively" if platform.native else f"run under qemu-user emulation of {platform.name}"
            console.print(f"[green]Bundle answered[/green] {image.name}: {describe_answer(image, answer)} in "
                          f"{answer['timing_ms']['total']:.1f} ms (its own binary, {how})")
            if not platform.native:
                console.print(f"Speed is not measured under emulation: on the {platform.name} machine, run "
                              "`./bin/yoloforge-server bench -config config.yaml` in the bundle first (img/s and p99 "
                              "per engine layout; -write keeps the fastest in config.yaml)")
            if delivered is not None and out is None:
                report_delivery(run, delivered)
    if build:
        try:
            with console.status("docker build (Docker SDK)"):
                tag = build_image(bundle_dir)
            console.print(f"[green]Image built:[/green] {tag}")
        except BundleError as err:
            raise YoloforgeError(f"--build: {err}") from None
    console.print("Run it:\n"
                  f"  cd {bundle_dir} && cp .env.example .env && docker compose up -d --build\n"
                  f"  docker compose exec api /app/yoloforge-server keys create -name me\n"
                  f"  curl -H 'Authorization: Bearer <key>' -H 'Content-Type: image/jpeg' --data-binary @photo.jpg "
                  f"http://localhost:{settings.port}/v1/predict\n"
                  f"Without Docker: cd {bundle_dir} && YOLOFORGE_REDIS_ENABLED=false YOLOFORGE_POSTGRES_ENABLED=false "
                  f"YOLOFORGE_API_KEYS=my-key ./bin/yoloforge-server serve -config config.yaml")
    return bundle_dir


def report_delivery(run: RunDir, delivered: dict[str, Any]) -> None:
    """Write delivered.json (kept out of selection.json, which the export stage's freshness digests) and say how
    the bundle's RPS compares with what the engines stage promised."""
    selection = Selection.of(run.read_selection()) or Selection({})
    row = selection.served or {}
    promise, basis = selection.promise()
    ratio = delivered["rps"] / promise if promise else None
    factor = server_cost_factor(delivered, row)
    atomic.write_json(run.delivered, {**delivered, "promised": promise, "promised_as": basis,
                                      "config": row.get("key"), "ratio": ratio,
                                      "engine_cpu_ms_per_image": row.get("cpu_ms_per_image"), "cost_factor": factor})
    shown = f"[green]Bundle delivered[/green] {delivered['rps']:.1f} RPS at {delivered['clients']} clients"
    if factor is not None:
        shown = (f"The server's CPU per request is {factor:.2f}x its engine's alone ("
                 f"{delivered['cpu_ms_per_request']:.1f} against {row['cpu_ms_per_image']:.1f} ms an image)\n" + shown)
    if ratio is None:
        console.print(shown + ", uncached")
        return
    console.print(shown + f", uncached: {ratio:.2f} of the {promise:.1f} {basis} the engines stage promised")
    if ratio < DELIVERY_FLOOR:
        stages = delivered.get("stages_ms", {})
        cost = ", ".join(f"{k} {stages[k]:.1f} ms" for k in ("decode", "preprocess", "queue", "inference",
                                                               "postprocess") if k in stages)
        cause = ("the promise times the engine alone: decoding, letterboxing and HTTP are the server's own costs"
                 if basis != THROUGH_BUNDLE else
                 "the engines stage measured this same bundle, so the machine was busier now or the measurement noisy")
        console.print(f"[yellow]warning:[/yellow] the bundle delivers {1 - ratio:.0%} less than promised; per "
                      f"image the server spends {cost} ({cause})", markup=True)


class ExportStage:
    name = "export"

    def enabled(self, state: RunState) -> bool:
        return True

    def inputs(self, state: RunState) -> dict[str, Any]:
        """The selection, the export settings and the Go server's source the bundle is built from."""
        from yoloforge.serving.bundle import gateway_digest

        return {"selection": file_digest(state.run.selection), "server": gateway_digest(),
                "export": state.spec.export.model_dump(mode="json")}

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        from yoloforge.serving.bundle import bundle_complete

        if verdict != "current" or not bundle_complete(state.run.bundle):
            return False
        stage_export(state, keep=True)  # the bundle is still checked against a validation image
        return True

    def run(self, state: RunState, verdict: Verdict) -> bool:
        stage_export(state, build=state.spec.export.build_image)
        return True


STAGE = ExportStage()
