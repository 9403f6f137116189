"""The HTTP contract (serving/openapi.yaml) as reusable checks: any server under test answers these the same."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[1] / "serving" / "openapi.yaml"
FUZZ_HOOKS = Path(__file__).resolve().parent / "fuzz_hooks.py"  # real images for the image media types


@functools.cache
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


def validate(body: Any, ref: str) -> None:
    """Validate a JSON body against '#/components/schemas/<name>' (refs resolve inside the spec)."""
    schema = {"$ref": ref, "components": spec()["components"]}
    jsonschema.validate(body, schema)


def response_schema(path: str, method: str, status: int) -> str | None:
    """The schema ref the spec gives for this answer, or None when the status is not documented."""
    responses = spec()["paths"][path][method]["responses"]
    entry = responses.get(str(status))
    if entry is None:
        return None
    if "$ref" in entry:
        entry = spec()["components"]["responses"][entry["$ref"].rsplit("/", 1)[1]]
    schema = entry.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "")


def fuzz(url: str, headers: dict[str, str], report_dir: Path, max_examples: int = 20, seed: int = 1,
         max_time_s: int | None = None, streams: bool = False, spec_path: Path = SPEC_PATH) -> tuple[bool, str]:
    """Schemathesis on a running server, driven by the spec: every phase (examples, coverage, fuzzing, stateful)
    and every check. Returns (no failure, its report's tail). The CLI is the same run a user would start by hand;
    a failure prints the curl command that reproduces it."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", str(spec_path), "--url", url, "--checks", "all",
               "--max-examples", str(max_examples), "--seed", str(seed), "--workers", "1",
               "--request-timeout", "60", "--report", "junit", "--report-dir", str(report_dir)]
    if max_time_s is not None:
        command += ["--max-time", str(max_time_s)]
    # the predict servers answer every route but the stream service's (tag streams); that one answers those.
    # A stream's source is a string the schema cannot constrain further (a path, a URL, a camera): a valid-looking
    # one may name nothing, which is a 400, so "schema-valid request rejected" is not checked there
    if streams:
        command += ["--include-tag", "streams", "--exclude-checks", "positive_data_acceptance"]
    else:
        command += ["--exclude-tag", "streams"]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160", "SCHEMATHESIS_HOOKS": str(FUZZ_HOOKS)}
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    return out.returncode == 0, (out.stdout + out.stderr)[-8000:]
