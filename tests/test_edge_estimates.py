"""targets.edge_device: the speed on a board nobody here has, estimated from published figures (engines/edge.py)
and labelled so; the advice where the FPS target is out of reach. Nothing is trained."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yoloforge.engines.edge import ANCHOR_GFLOPS, EDGE_DEVICES, estimate_ms, gflops_at, largest_imgsz_for
from yoloforge.ray_app.benchmark.edge import describe, edge_estimate

RPI5, ORIN = EDGE_DEVICES["rpi5"], EDGE_DEVICES["orin-nano"]


def test_the_published_model_at_its_size_is_estimated_at_its_published_figure():
    assert estimate_ms(RPI5, ANCHOR_GFLOPS) == pytest.approx(168.0)
    assert estimate_ms(ORIN, ANCHOR_GFLOPS) == pytest.approx(4.9)
    assert estimate_ms(ORIN, ANCHOR_GFLOPS, ("tensorrt", "int8")) == pytest.approx(3.9)


def test_a_pi_bundle_is_estimated_with_onnx_runtimes_figure_not_ncnns():
    assert RPI5.engine == ("onnxruntime", "fp32") and RPI5.label == "estimated for rpi5"
    assert estimate_ms(RPI5, ANCHOR_GFLOPS) > estimate_ms(RPI5, ANCHOR_GFLOPS, ("ncnn", "fp32"))


def test_every_device_names_a_platform_the_bundle_is_built_for():
    from yoloforge.serving.bundle.platform import PLATFORMS

    assert all(d.bundle_platform in PLATFORMS and d.engine in d.anchors_ms for d in EDGE_DEVICES.values())


@given(st.floats(0.5, 200), st.sampled_from([160, 320, 480, 640, 1280]))
def test_the_estimate_grows_with_the_work_and_with_the_square_of_the_input_side(gflops, imgsz):
    assert estimate_ms(RPI5, 2 * gflops) == pytest.approx(2 * estimate_ms(RPI5, gflops))
    assert estimate_ms(RPI5, gflops_at(gflops, imgsz, imgsz // 2)) == pytest.approx(estimate_ms(RPI5, gflops) / 4)


@settings(max_examples=200)
@given(st.floats(0.5, 100), st.sampled_from([320, 416, 640, 1280]), st.floats(1, 120),
       st.sampled_from(sorted(EDGE_DEVICES)))
def test_the_largest_size_for_a_target_is_the_brute_force_one(gflops, imgsz, fps, name):
    device = EDGE_DEVICES[name]
    meets = [s for s in range(160, imgsz + 1, 32) if 1000 / estimate_ms(device, gflops_at(gflops, imgsz, s)) >= fps]
    assert largest_imgsz_for(device, gflops, imgsz, fps) == (max(meets) if meets else None)


def test_a_target_out_of_reach_says_which_input_size_reaches_it():
    found = edge_estimate("rpi5", ANCHOR_GFLOPS, 640, fps=15)  # 168 ms at 640: 6 FPS
    assert found["meets_fps"] is False and found["fps"] == pytest.approx(1000 / 168)
    size = largest_imgsz_for(RPI5, ANCHOR_GFLOPS, 640, 15)
    assert size is not None and f"{size} px" in found["advice"][0]
    lines = describe(found, 15)
    assert lines[0].startswith("estimated for rpi5:") and "not measured" in lines[0]
    assert "out of reach" in lines[1] and "--platform linux/arm64" in lines[0]


def test_a_target_no_input_size_reaches_asks_for_a_smaller_model_or_board():
    found = edge_estimate("rpi5", 80.0, 640, fps=60)
    assert found["meets_fps"] is False and "smaller model" in found["advice"][0]


def test_a_target_in_reach_is_said_to_be_with_no_advice():
    found = edge_estimate("orin-nano", ANCHOR_GFLOPS, 640, fps=60)  # 4.9 ms: 204 FPS
    assert found["meets_fps"] is True and "advice" not in found
    assert "in reach" in describe(found, 60)[1]


def test_the_search_estimates_latency_for_the_edge_device_instead_of_measuring_it():
    from yoloforge.ray_app.search.seeding import trial_context
    from yoloforge.ray_app.spec import parse_job

    spec = parse_job({"data": "d", "model": "yolo11n.yaml", "targets": {"edge_device": "rpi5"}})
    ctx = trial_context(spec, "detect", "data.yaml", "yolo11n.yaml")  # no latency measured: it would load a model
    assert ctx.edge_device == "rpi5" and ctx.latency_ms == {}
