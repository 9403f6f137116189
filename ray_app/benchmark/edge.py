"""The engines stage's word on `targets.edge_device`: the chosen model's speed there, estimated (engines/edge.py),
whether the FPS target is in reach, and what would reach it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yoloforge.engines.edge import EDGE_DEVICES, estimate_ms, gflops_at, largest_imgsz_for


def model_gflops(weights: Path, imgsz: int) -> float:
    """The network's GFLOPs at imgsz (Ultralytics' own count)."""
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    return float(get_flops(YOLO(str(weights)).model, imgsz) or 0.0)


def edge_estimate(device_name: str, gflops: float, imgsz: int, fps: float | None) -> dict[str, Any]:
    """The estimate at imgsz on the device's bundle engine, labelled, with the advice where fps is out of reach."""
    device = EDGE_DEVICES[device_name]
    ms = estimate_ms(device, gflops)
    backend, precision = device.engine
    found: dict[str, Any] = {"device": device.name, "label": device.label, "imgsz": imgsz, "gflops": gflops,
                             "backend": backend, "precision": precision, "latency_ms": ms, "fps": 1000 / ms,
                             "bundle_platform": device.bundle_platform}
    if fps is None or 1000 / ms >= fps:
        found["meets_fps"] = None if fps is None else True
        return found
    found["meets_fps"] = False
    smaller = largest_imgsz_for(device, gflops, imgsz, fps)
    others = sorted(((1000 / estimate_ms(device, gflops, engine), engine) for engine in device.anchors_ms
                     if engine != device.engine), reverse=True)
    advice = []
    if smaller is not None:
        advice.append(f"an input size of {smaller} px (search.imgsz, or imgsz in search.space) is estimated at "
                      f"{1000 / estimate_ms(device, gflops_at(gflops, imgsz, smaller)):.0f} FPS")
    else:
        advice.append("no input size down to 160 px reaches it with this model: a smaller model (yolo11n, or the "
                      "model: setting) or a faster board")
    if others and others[0][0] > 1000 / ms:
        rate, (other, other_precision) = others[0]
        advice.append(f"{other} {other_precision} would be {rate:.0f} FPS at {imgsz} px by the published figures, "
                      "but the bundle does not run it there")
    found["advice"] = advice
    return found


def describe(estimate: dict[str, Any], fps: float | None) -> list[str]:
    """The console lines for an estimate."""
    lines = [f"{estimate['label']}: {estimate['latency_ms']:.1f} ms an image, {estimate['fps']:.1f} FPS "
             f"({estimate['backend']} {estimate['precision']}, {estimate['imgsz']} px, {estimate['gflops']:.1f} "
             f"GFLOPs; the published figure scaled, not measured: run `yoloforge-server bench` on the device "
             f"with `yoloforge export --platform {estimate['bundle_platform']}`)"]
    if estimate["meets_fps"] is False:
        lines.append(f"the {fps:g} FPS target is out of reach there by this estimate; " + "; ".join(estimate["advice"]))
    elif estimate["meets_fps"]:
        lines.append(f"the {fps:g} FPS target is in reach there by this estimate")
    return lines
