"""Target vs achieved: the rows shared by the end-of-run summary and report.html."""

from yoloforge.engines.selection import Selection
from yoloforge.ray_app.outcome import engine_verdict, target_rows

CPU = {"key": "onnxruntime-fp32-b1-320px-cpu", "device": "cpu", "throughput": 80.0, "p99_ms": 14.0,
       "peak_rss_mb": 300.0, "cuda_peak_mb": None}
GPU = {**CPU, "key": "pytorch-fp16-b8-640px-cuda:0", "device": "cuda:0", "cuda_peak_mb": 900.0}


def by_name(rows):
    return {r.name: r for r in rows}


def test_a_metric_target_is_met_missed_or_unmeasured():
    rows = by_name(target_rows({"metrics": {"mAP50": 0.5, "mAP50-95": 0.4, "recall": 0.3}},
                               {"mAP50": 0.61, "mAP50-95": 0.2}, None))
    assert (rows["mAP50"].met, rows["mAP50-95"].met, rows["recall"].met) == (True, False, None)
    assert rows["mAP50"].target == ">= 0.5" and rows["mAP50"].achieved == "0.6100"


def test_engine_rows_show_throughput_p99_and_memory_against_their_targets():
    rows = by_name(target_rows({"fps": 100, "p99_latency_ms": 20, "max_memory_mb": 250}, None,
                               Selection({"chosen": CPU})))
    assert (rows["throughput"].met, rows["p99 latency"].met, rows["memory"].met) == (False, True, False)
    assert rows["p99 latency"].achieved == "14.0 ms"


def test_engine_rows_without_targets_are_shown_but_not_judged():
    rows = target_rows({}, None, Selection({"chosen": CPU}))
    assert [r.name for r in rows] == ["throughput", "p99 latency", "memory"]
    assert all(r.met is None and r.target == "-" for r in rows)


def test_a_gpu_config_is_judged_on_its_gpu_memory():
    assert by_name(target_rows({"max_memory_mb": 1000}, None,
                               Selection({"chosen": GPU})))["memory"].achieved == "900 MB"


def test_the_closest_config_stands_in_when_none_met_the_targets():
    assert engine_verdict(Selection({"chosen": None, "closest": CPU})) == (CPU["key"], False)
    assert engine_verdict(Selection({"chosen": GPU})) == (GPU["key"], True)
    assert engine_verdict(None) is None
    assert by_name(target_rows({"fps": 50}, None,
                               Selection({"chosen": None, "closest": CPU})))["throughput"].met is True


def test_the_chosen_engines_test_split_accuracy_is_judged_against_the_metric_targets():
    test = {"baseline": {"key": "b", "mAP50": 0.7}, "chosen": {"key": "c", "mAP50": 0.55, "mAP50-95": 0.3}}
    rows = by_name(target_rows({"metrics": {"mAP50": 0.6}}, {"mAP50": 0.65}, Selection({"chosen": CPU, "test": test})))
    assert rows["mAP50 on test"].achieved == "0.5500" and rows["mAP50 on test"].met is False
    assert rows["mAP50"].met is True  # the search's own validation figure stays beside it


def test_without_targets_the_test_split_shows_the_tasks_accuracy_metric():
    rows = by_name(target_rows({}, None,
                               Selection({"chosen": CPU, "task": "detect", "test": {"chosen": {"mAP50-95": 0.3}}})))
    assert rows["mAP50-95 on test"].achieved == "0.3000" and rows["mAP50-95 on test"].met is None


def test_no_test_split_adds_no_test_row():
    assert not [r for r in target_rows({"metrics": {"mAP50": 0.5}}, None,
                                       Selection({"chosen": CPU})) if "test" in r.name]


def test_the_servers_cost_factor_is_shown_with_its_milliseconds_and_not_judged():
    delivered = {"rps": 50.0, "clients": 16, "cost_factor": 1.5, "cpu_ms_per_request": 30.0,
                 "engine_cpu_ms_per_image": 20.0, "stages_ms": {"decode": 4.0, "preprocess": 1.0, "postprocess": 0.5}}
    row = by_name(target_rows({}, None, Selection({"chosen": CPU}), delivered))[
        "server cost (CPU per request / engine's per image)"]
    assert row.achieved == "1.50x (30.0 against 20.0 ms; per image decode 4.0, preprocess 1.0, postprocess 0.5 ms)"
    assert row.met is None and row.target == "-"
    assert "server cost (CPU per request / engine's per image)" not in by_name(
        target_rows({}, None, Selection({"chosen": CPU}), {"rps": 50.0, "clients": 16}))
