"""JobSpec: defaults, and validation errors that name the field and the allowed values."""

from __future__ import annotations

import pytest
import yaml
from yoloforge.core.errors import SpecError
from yoloforge.ray_app.cli import render_template
from yoloforge.ray_app.spec import JobSpec, dump_job, load_job, parse_job


def test_minimal_spec_fills_defaults():
    spec = parse_job({"data": "ds"})
    assert spec.data.path == "ds" and spec.model == "yolo11n.pt" and spec.search.population == 8
    assert spec.resources.gpu == 0 and spec.engines.backends[0] == "pytorch"


def test_missing_data_is_named():
    with pytest.raises(SpecError, match=r"- data: is required"):
        parse_job({"model": "yolo11n.pt"})


def test_unknown_field_suggests_the_closest_and_lists_allowed():
    with pytest.raises(SpecError) as err:
        parse_job({"data": "ds", "serch": {}})
    assert "serch: unknown field (did you mean 'search'?)" in err.value.message
    assert "allowed here: name, model, task, data" in err.value.message


def test_unknown_nested_field_lists_that_section():
    with pytest.raises(SpecError) as err:
        parse_job({"data": "ds", "search": {"populaton": 4}})
    assert "search.populaton: unknown field (did you mean 'population'?)" in err.value.message


def test_bad_task_lists_allowed_values():
    with pytest.raises(SpecError, match="task: Input should be 'detect', 'segment' or 'classify'"):
        parse_job({"data": "ds", "task": "pose"})


def test_unknown_metric_lists_allowed_metrics():
    with pytest.raises(SpecError, match=r"targets\.metrics\.mAP5095"):
        parse_job({"data": "ds", "targets": {"metrics": {"mAP5095": 0.5}}})


def test_metric_as_percentage_is_refused_with_hint():
    with pytest.raises(SpecError, match="fraction between 0 and 1"):
        parse_job({"data": "ds", "targets": {"metrics": {"mAP50-95": 60}}})


def test_metric_that_task_does_not_measure_is_refused():
    with pytest.raises(SpecError, match="top1 is not measured for task detect; allowed: mAP50"):
        parse_job({"data": "ds", "task": "detect", "targets": {"metrics": {"top1": 0.5}}})


def test_imgsz_not_multiple_of_32_suggests_nearest():
    with pytest.raises(SpecError, match="try 640"):
        parse_job({"data": "ds", "search": {"imgsz": 650}})


def test_fractional_gpu_above_one_is_refused():
    with pytest.raises(SpecError, match="whole number of GPUs"):
        parse_job({"data": "ds", "resources": {"gpu": 1.5}})


def test_fractional_gpu_below_one_is_allowed():
    assert parse_job({"data": "ds", "resources": {"gpu": 0.25}}).resources.gpu == 0.25


def test_bad_device_is_explained():
    with pytest.raises(SpecError, match="device 'gpu0'"):
        parse_job({"data": "ds", "targets": {"device": "gpu0"}})


def test_gene_override_with_low_above_high_is_refused():
    with pytest.raises(SpecError, match=r"search\.space\.lr0: low \(0\.1\) must be below high"):
        parse_job({"data": "ds", "search": {"space": {"lr0": {"low": 0.1, "high": 0.01}}}})


def test_a_first_rung_at_or_past_the_last_epoch_is_refused():
    with pytest.raises(SpecError, match=r"fidelity\.min_epochs \(10\) must be below search\.epochs \(10\)"):
        parse_job({"data": "ds", "search": {"epochs": 10, "fidelity": {"min_epochs": 10}}})


def test_stopping_trials_early_with_two_objectives_is_refused():
    with pytest.raises(SpecError, match="mode pareto has two objectives"):
        parse_job({"data": "ds", "search": {"mode": "pareto", "epochs": 10, "fidelity": {"min_epochs": 2}}})


def test_engine_name_lists_allowed_backends():
    with pytest.raises(SpecError, match="'pytorch', 'onnxruntime', 'openvino' or 'tensorrt'"):
        parse_job({"data": "ds", "engines": {"backends": ["tflite"]}})


def test_run_name_must_be_a_folder_name():
    with pytest.raises(SpecError, match="name 'a/b'"):
        parse_job({"data": "ds", "name": "a/b"})


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("data: ds\nsearch:\n  population: [4\n")
    with pytest.raises(SpecError) as err:
        load_job(job)
    assert err.value.where.startswith(f"{job}:") and "YAML syntax error" in err.value.message


def test_non_mapping_yaml_is_explained(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_job(job)


def test_relative_paths_are_relative_to_the_job_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "best.pt").write_bytes(b"x")
    (tmp_path / "sub" / "job.yaml").write_text("data: ../ds\nmodel: best.pt\n")
    spec = load_job(tmp_path / "sub" / "job.yaml")
    assert spec.data.path == str(tmp_path / "ds")
    assert spec.model == str(tmp_path / "sub" / "best.pt")
    assert spec.runs_dir == str(tmp_path / "sub" / "runs")


def test_official_model_names_stay_names(tmp_path):
    (tmp_path / "job.yaml").write_text("data: ds\nmodel: yolo11s.pt\n")
    assert load_job(tmp_path / "job.yaml").model == "yolo11s.pt"


def test_dumped_spec_loads_back_equal(tmp_path):
    spec = parse_job({"data": str(tmp_path / "ds"), "targets": {"metrics": {"mAP50-95": 0.6}, "fps": 60},
                      "runs_dir": str(tmp_path / "runs")})
    assert load_job(dump_job(spec, tmp_path / "job.yaml")) == spec


@pytest.mark.parametrize("task", ["detect", "segment", "classify"])
def test_init_template_is_a_valid_commented_spec(task):
    text = render_template(task=task)
    assert text.count("#") > 20
    spec = JobSpec.model_validate(yaml.safe_load(text))
    assert spec.task == task


def test_json_schema_documents_every_section():
    schema = JobSpec.model_json_schema()
    assert {"model", "task", "data", "targets", "search", "resources", "engines", "export"} <= set(schema["properties"])


def test_search_space_overrides_apply_to_the_ga_space():
    spec = parse_job({"data": "ds", "search": {"space": {"lr0": {"low": 1e-4, "high": 1e-2}, "mosaic": {"value": 0},
                                                         "imgsz": {"choices": [320, 640]}}}})
    space = spec.search.search_space()
    assert "mosaic" not in space.names and space.fixed["mosaic"] == 0
    assert next(g for g in space.genes if g.name == "imgsz").choices == (320, 640)
    assert "batch" not in space.names


def test_unknown_gene_is_refused_with_the_gene_list():
    with pytest.raises(SpecError, match=r"search\.space: unknown gene 'lr'; genes: optimizer, lr0"):
        parse_job({"data": "ds", "search": {"space": {"lr": {"low": 0.1}}}})


def test_low_high_on_a_categorical_gene_is_refused():
    with pytest.raises(SpecError, match="optimizer' is categorical"):
        parse_job({"data": "ds", "search": {"space": {"optimizer": {"low": 0, "high": 1}}}})


def test_every_export_field_reaches_the_server_settings():
    from yoloforge.ray_app.spec import ExportSpec
    from yoloforge.serving.bundle import ServerSettings

    export = ExportSpec(port=9000, max_batch=16, max_wait_ms=2, max_queue=10, concurrent_batches=3, max_body_mb=4,
                        cache_ttl_s=0)
    assert export.server() == ServerSettings(port=9000, max_batch_size=16, batch_wait_ms=2, max_queue=10,
                                             concurrent_batches=3, max_body_mb=4, cache_ttl_s=0)


def test_a_job_yaml_written_before_export_out_and_variant_were_retired_still_loads():
    from yoloforge.ray_app.spec import parse_job

    spec = parse_job({"data": "d", "export": {"out": "bundle", "variant": "auto", "port": 8080, "max_batch": 8}})
    assert spec.export.port == 8080 and spec.export.max_batch == 8


def test_a_retired_export_setting_with_another_value_is_explained():
    from yoloforge.core.errors import SpecError
    from yoloforge.ray_app.spec import parse_job

    with pytest.raises(SpecError, match=r"export\.variant is no longer a setting"):
        parse_job({"data": "d", "export": {"variant": "cuda"}})
