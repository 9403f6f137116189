"""Stage 5: the deployable bundle (`yoloforge export RUN_DIR`): the Go server, the model, Docker files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir
from yoloforge.ray_app.console import console
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict, file_digest
from yoloforge.ray_app.stages.preview import describe_answer, free_port, preview_options, sample_image


def stage_export(run_dir: Path, out: Path | None = None, *, build: bool = False, check: bool = True,
                 keep: bool = False, max_batch_size: int | None = None,
                 batch_wait_ms: float | None = None) -> Path:
    """Write the bundle, start its binary once to answer one image (check), and build its image if asked."""
    from yoloforge.serving.bundle import BundleError, build_image, check_bundle, export_bundle

    run = RunDir.open(run_dir)
    bundle_dir = out or run.bundle
    console.rule("[bold]5 export[/bold]")
    if keep:
        console.print(f"export: {bundle_dir} was written from the current selection.json by the current server "
                      f"source; kept (re-export with `yoloforge export {run}`)")
    else:
        options = preview_options(run.path, max_batch_size, batch_wait_ms)
        try:
            with console.status("writing the bundle (compiling the Go server the first time takes a minute)"):
                bundle = export_bundle(run.path, bundle_dir, max_batch_size=int(options["max_batch_size"]),
                                       batch_wait_ms=float(options["batch_wait_ms"]),
                                       max_queue=int(options["max_queued_requests"]),
                                       concurrent_batches=int(options["concurrent_batches"]))
        except BundleError as err:
            raise YoloforgeError(str(err)) from None
        for note in bundle.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
        engine = bundle.config["engine"]
        console.print(f"[green]Bundle written[/green] to {bundle_dir}: Go server, ONNX Runtime {engine['precision']} "
                      f"on {engine['provider']}, Dockerfile, docker-compose.yml (api + redis + postgres)")
    if check:
        image = sample_image(run_dir)
        if image is not None:
            try:
                with console.status("starting the bundle's server and sending it one image"):
                    answer = check_bundle(bundle_dir, image, free_port())
            except BundleError as err:
                raise YoloforgeError(f"the bundle's server did not answer: {err}") from None
            console.print(f"[green]Bundle answered[/green] {image.name}: {describe_answer(image, answer)} in "
                          f"{answer['timing_ms']['total']:.1f} ms (its own binary, run natively)")
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
                  f"http://localhost:8080/v1/predict\n"
                  f"Without Docker: cd {bundle_dir} && YOLOFORGE_REDIS_ENABLED=false YOLOFORGE_POSTGRES_ENABLED=false "
                  f"YOLOFORGE_API_KEYS=my-key ./bin/yoloforge-server serve -config config.yaml")
    return bundle_dir


class ExportStage:
    name = "export"

    def enabled(self, state: RunState) -> bool:
        return True

    def inputs(self, state: RunState) -> dict[str, Any]:
        """The selection, the batching settings and the Go server's source the bundle is built from."""
        from yoloforge.serving.bundle import gateway_digest

        return {"selection": file_digest(state.run.selection), "server": gateway_digest(),
                "preview": state.spec.preview.model_dump(mode="json")}

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        from yoloforge.serving.bundle import bundle_complete

        if verdict != "current" or not bundle_complete(state.run.bundle):
            return False
        stage_export(state.run.path, keep=True)  # the bundle is still checked against a validation image
        return True

    def run(self, state: RunState, verdict: Verdict) -> bool:
        stage_export(state.run.path)
        return True


STAGE = ExportStage()
