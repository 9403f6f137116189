"""Stage 5: the deployable bundle (`yoloforge export RUN_DIR`): the Go server, the model, Docker files."""

from __future__ import annotations

from pathlib import Path

from yoloforge.core.errors import YoloforgeError
from yoloforge.ray_app.console import console
from yoloforge.ray_app.preview_stage import describe_answer, free_port, sample_image


def stage_export(run_dir: Path, out: Path | None = None, *, build: bool = False, check: bool = True,
                 force: bool = True, max_batch_size: int | None = None,
                 batch_wait_ms: float | None = None) -> Path:
    """Write the bundle, start its binary once to answer one image (check), and build its image if asked."""
    from yoloforge.serving.bundle import BundleError, build_image, bundle_current, check_bundle, export_bundle

    if not (run_dir / "job.yaml").is_file():
        raise YoloforgeError(f"{run_dir} is not a yoloforge run directory (no job.yaml)",
                             fix="give the folder under runs/ that `yoloforge run` created")
    bundle_dir = out or run_dir / "bundle"
    console.rule("[bold]5 export[/bold]")
    if not force and out is None and bundle_current(bundle_dir, run_dir):
        console.print(f"export: {bundle_dir} is newer than selection.json; kept (re-export with "
                      f"`yoloforge export {run_dir}`)")
    else:
        try:
            with console.status("writing the bundle (compiling the Go server the first time takes a minute)"):
                bundle = export_bundle(run_dir, bundle_dir, max_batch_size=max_batch_size,
                                       batch_wait_ms=batch_wait_ms)
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
