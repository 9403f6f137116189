"""cluster/: the Ray cluster launcher config, the KubeRay manifests and the bundle's Kubernetes manifests are
valid against the schemas their tools use (Ray's own ray-schema.json, Kubernetes 1.33's OpenAPI through
kubernetes-validate, Ray Serve's config schema), and what they run exists in yoloforge."""

from __future__ import annotations

import importlib
import json
import shlex
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
K8S_VERSION = "1.33"


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def validate_k8s(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def pod_templates(doc: dict) -> list[dict]:
    """The pod templates inside a KubeRay object (its CRD is not in Kubernetes' schema; its pods are)."""
    spec = doc["spec"]
    cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
    return [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]


@pytest.mark.parametrize("name", ["api.yaml", "redis.yaml", "postgres.yaml", "secret.example.yaml"])
def test_bundle_manifests_are_valid_kubernetes(name):
    for doc in documents(CLUSTER / "k8s" / name):
        validate_k8s(doc)


def test_the_validator_refuses_a_misspelt_field():
    import kubernetes_validate

    doc = documents(CLUSTER / "k8s" / "api.yaml")[0]
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(doc)


def test_bundle_deployment_requests_a_gpu_and_probes_the_servers_health_routes():
    deployment, _service, hpa = documents(CLUSTER / "k8s" / "api.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert hpa["kind"] == "HorizontalPodAutoscaler" and hpa["spec"]["scaleTargetRef"]["name"] == "yoloforge-api"
    env = {e["name"] for e in container["env"]}
    overrides = (Path(__file__).resolve().parents[1] / "serving/gateway/internal/config/config.go").read_text()
    assert all(f'"{name}"' in overrides for name in env), "an env var the server does not read"


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml", "rayservice.yaml"])
def test_kuberay_objects_have_valid_pods_and_the_pinned_ray_version(name):
    import ray

    for doc in documents(CLUSTER / "kuberay" / name):
        if doc["apiVersion"] == "v1":
            validate_k8s(doc)
            continue
        assert doc["apiVersion"] == "ray.io/v1"
        spec = doc["spec"]
        cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
        assert cluster["rayVersion"] == ray.__version__
        for group in cluster["workerGroupSpecs"]:
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        for template in pod_templates(doc):
            validate_k8s({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template})


def test_rayjob_runs_a_job_yaml_that_yoloforge_accepts():
    from typer.testing import CliRunner
    from yoloforge.ray_app.cli import app
    from yoloforge.ray_app.spec import parse_job

    config, job = documents(CLUSTER / "kuberay" / "rayjob.yaml")
    spec = parse_job(yaml.safe_load(config["data"]["job.yaml"]), "rayjob.yaml")
    assert spec.resources.gpu == 0.25 and spec.resources.address == "auto"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["yoloforge", "run"]
    help_text = CliRunner().invoke(app, ["run", "--help"]).output
    assert all(flag in help_text for flag in argv if flag.startswith("--"))


def test_rayservice_serve_config_is_valid_and_imports_the_preview():
    from ray.serve.schema import ServeDeploySchema

    doc = documents(CLUSTER / "kuberay" / "rayservice.yaml")[0]
    config = ServeDeploySchema.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    app = config.applications[0]
    module, _, attr = app.import_path.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert app.args["run_dir"].startswith("/runs/")


def test_ray_cluster_launcher_config_is_valid_for_ray():
    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    assert config["available_node_types"]["gpu_worker"]["resources"]["GPU"] == 1
