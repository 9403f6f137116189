"""Stage 5: the deployable bundle (`yoloforge export RUN_DIR`): the Go server, the model, Docker files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir
from yoloforge.ray_app.console import console
from yoloforge.ray_app.spec import load_run_job
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict, file_digest
from yoloforge.ray_app.stages.preview import describe_answer, free_port, sample_image
from yoloforge.serving.bundle import ServerSettings


def stage_export(run_dir: Path, out: Path | None = None, *, build: bool = False, check: bool = True,
                 keep: bool = False, max_batch_size: int | None = None,
                 batch_wait_ms: float | None = None) -> Path:
    """Write the bundle, start its binary once to answer one image (check), and build its image if asked."""
    from yoloforge.serving.bundle import BundleError, build_image, check_bundle, export_bundle

    run = RunDir.open(run_dir)
    bundle_dir = out or run.bundle
    settings = server_settings(run, max_batch_size, batch_wait_ms)
    console.rule("[bold]5 export[/bold]")
    if keep:
        console.print(f"export: {bundle_dir} was written from the current selection.json, export settings and "
                      f"server source; kept (re-export with `yoloforge export {run}`)")
    else:
        try:
            with console.status("writing the bundle (compiling the Go server the first time takes a minute)"):
                bundle = export_bundle(run.path, bundle_dir, settings)
        except BundleError as err:
            raise YoloforgeError(str(err)) from None
        for note in bundle.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
        engine = bundle.config["engine"]
        console.print(f"[green]Bundle written[/green] to {bundle_dir}: Go server (ONNX Runtime, {engine['provider']} "
                      f"execution provider, {engine['precision']}, {engine.get('workers', 1)} engine worker(s)), "
                      "Dockerfile, docker-compose.yml (api + redis + postgres)")
    if check:
        image = sample_image(run_dir)
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
            console.print(f"[green]Bundle answered[/green] {image.name}: {describe_answer(image, answer)} in "
                          f"{answer['timing_ms']['total']:.1f} ms (its own binary, run natively)")
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


def server_settings(run: RunDir, max_batch_size: int | None = None,
                    batch_wait_ms: float | None = None) -> ServerSettings:
    """The bundle's server settings: the run's export: settings, with the command line's overrides."""
    settings = load_run_job(run).export.server()
    overrides = {"max_batch_size": max_batch_size, "batch_wait_ms": batch_wait_ms}
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


# the delivery check: long enough for a steady rate, short beside the stages before it
DELIVERY_S = 5.0
DELIVERY_CLIENTS = 16
DELIVERY_FLOOR = 0.9  # below this share of the promise, the gap is printed as a warning with its cause


def report_delivery(run: RunDir, delivered: dict[str, Any]) -> None:
    """Write delivered.json (kept out of selection.json, which the export stage's freshness digests) and say how
    the bundle's RPS compares with what the engines stage promised."""
    from yoloforge.engines.selection import THROUGH_BUNDLE, promised

    selection = run.read_selection() or {}
    row = selection.get("chosen") or selection.get("closest") or {}
    promise, basis = promised(selection)
    ratio = delivered["rps"] / promise if promise else None
    atomic.write_json(run.delivered, {**delivered, "promised": promise, "promised_as": basis,
                                      "config": row.get("key"), "ratio": ratio})
    shown = f"[green]Bundle delivered[/green] {delivered['rps']:.1f} RPS at {delivered['clients']} clients"
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
        stage_export(state.run.path, keep=True)  # the bundle is still checked against a validation image
        return True

    def run(self, state: RunState, verdict: Verdict) -> bool:
        stage_export(state.run.path, build=state.spec.export.build_image)
        return True


STAGE = ExportStage()
