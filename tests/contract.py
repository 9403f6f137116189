"""The HTTP contract (serving/openapi.yaml) as reusable checks: any server under test answers these the same."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[1] / "serving" / "openapi.yaml"


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
