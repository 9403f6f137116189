"""The int8 recipe a configuration runs (engines/int8_choice.py): chosen on images it is then not checked on,
recorded in every output, cached, and re-used by the servers; and what the selection makes of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from yoloforge.engines.accuracy import Sample, load_split
from yoloforge.engines.int8_choice import RecipeChoice, calibration_images, row_recipe, split_halves
from yoloforge.engines.processing import preprocess
from yoloforge.engines.quantize import Recipe
from yoloforge.engines.selection import EngineTargets, int8_summary, select, verdicts

NO_SERVER_LIMIT = lambda row: None  # noqa: E731  (every configuration deployable)


def _row(backend: str, precision: str, throughput: float, accuracy: float, **extra: object) -> dict:
    key = f"{backend}-{precision}-1-128"
    return {"key": key, "backend": backend, "precision": precision, "batch": 1, "imgsz": 128, "device": "cpu",
            "status": "ok", "throughput": throughput, "p50_ms": 1.0, "p99_ms": 2.0, "mAP50-95": accuracy, **extra}


SEARCHED = Recipe("entropy", 128, ("model.0", "model.2"))


def _choice(heldout: float = 0.496) -> RecipeChoice:
    return RecipeChoice(recipe=SEARCHED, backend="onnxruntime", imgsz=128, metric="mAP50-95", budget_s=60.0,
                        search_s=41.0, tried=9, out_of_time=False, selection_images=16, heldout_images=16,
                        fp32_selection=0.5, int8_selection=0.499, fp32_heldout=0.5, int8_heldout=heldout)


def test_a_recipe_says_what_it_kept_in_float_and_its_drop_on_the_held_out_images():
    assert _choice().describe() == ("int8: 2 layers in float, entropy, 128 images: -0.0040 mAP50-95 on 16 "
                                    "held-out validation images")


def test_a_measured_rows_recipe_survives_the_parquet_round_trip():
    import pyarrow as pa

    row = _row("onnxruntime", "int8", 100, 0.5, **_choice().row_fields())
    back = pa.Table.from_pylist([row, _row("pytorch", "fp32", 10, 0.5)]).to_pylist()
    assert row_recipe(back[0]) == _choice().recipe
    assert row_recipe(back[1]) is None  # a row that is not int8 (a null column in parquet)


def test_a_recipe_choice_survives_its_cache_file():
    choice = _choice()
    assert RecipeChoice.from_dict(json.loads(json.dumps(choice.as_dict()))) == choice


def test_the_choice_is_checked_on_the_test_split_where_there_is_one_else_on_the_other_half():
    val = [Sample(np.full((4, 4, 3), i, np.uint8), np.zeros((0, 4)), np.zeros(0)) for i in range(7)]
    test = val[:3]
    chosen_on, checked_on = split_halves(val)
    assert [int(s.image[0, 0, 0]) for s in chosen_on] == [0, 2, 4, 6]
    assert [int(s.image[0, 0, 0]) for s in checked_on] == [1, 3, 5]
    assert split_halves(val, test) == (val, test)


def test_every_prefix_of_the_calibration_images_is_spread_over_the_training_split(detect_ds):
    images = load_split(detect_ds, "detect", "train")
    pool = calibration_images(detect_ds, "detect", 64, 100)
    assert len(pool) == len(images) >= 8
    spread = preprocess([s.image for s in images[0::4]], 64, "detect")[0]
    np.testing.assert_array_equal(pool[: len(spread)], spread)  # a quarter of the pool is every 4th image


def test_an_int8_row_is_held_to_its_drop_on_the_images_no_recipe_choice_saw():
    # on the whole validation split it loses nothing, but its recipe was chosen on half of those images: on the
    # other half it loses 0.02, over the 0.01 floor
    rows = [_row("pytorch", "fp32", 10, 0.50), _row("onnxruntime", "fp32", 50, 0.50),
            _row("onnxruntime", "int8", 80, 0.50, **_choice(heldout=0.48).row_fields())]
    selection = select(rows, EngineTargets(), 128, cannot_run=NO_SERVER_LIMIT)
    assert selection["chosen"]["key"] == "onnxruntime-fp32-1-128"
    why = verdicts(rows, selection, cannot_run=NO_SERVER_LIMIT)["onnxruntime-int8-1-128"]
    assert "0.020" in why and "held-out" in why


def test_an_int8_row_within_the_floor_on_both_image_sets_is_chosen_and_the_selection_says_how_it_was_made():
    rows = [_row("pytorch", "fp32", 10, 0.50), _row("onnxruntime", "fp32", 50, 0.50),
            _row("onnxruntime", "int8", 80, 0.497, **_choice(heldout=0.497).row_fields())]
    selection = select(rows, EngineTargets(), 128, cannot_run=NO_SERVER_LIMIT)
    summary = int8_summary(rows, selection, cannot_run=NO_SERVER_LIMIT)
    assert selection["chosen"]["precision"] == "int8"
    assert summary["verdict"].startswith("int8 chosen: onnxruntime-int8-1-128, int8: 2 layers in float, entropy")
    assert summary["recipes"] == ["onnxruntime @128px " + _choice(heldout=0.497).describe()
                                  + " (9 recipes tried in 41 s)"]


def test_the_selection_says_why_fp32_held_when_int8_is_slower():
    rows = [_row("pytorch", "fp32", 10, 0.50), _row("openvino", "fp32", 90, 0.50),
            _row("onnxruntime", "int8", 60, 0.50, **_choice(heldout=0.5).row_fields())]
    selection = select(rows, EngineTargets(), 128, cannot_run=NO_SERVER_LIMIT)
    verdict = int8_summary(rows, selection, cannot_run=NO_SERVER_LIMIT)["verdict"]
    assert verdict.startswith("fp32 held: the fastest int8, onnxruntime-int8-1-128 (60.0 img/s), meets the targets "
                              "but is slower than openvino-fp32-1-128")


def test_no_int8_configuration_no_int8_summary():
    rows = [_row("pytorch", "fp32", 10, 0.50)]
    assert int8_summary(rows, select(rows, EngineTargets(), 128, cannot_run=NO_SERVER_LIMIT),
                        cannot_run=NO_SERVER_LIMIT) is None


@pytest.mark.slow
def test_a_recipe_is_searched_once_and_read_back_while_its_inputs_are_the_same(detector, tmp_path, monkeypatch):
    from yoloforge.engines import int8_choice
    from yoloforge.engines.base import ModelFacts

    weights, data = detector
    facts = ModelFacts.from_checkpoint(weights, imgsz=128)
    pool = calibration_images(data, "detect", 128, 32)
    val = load_split(data, "detect", "val", 8)
    first = int8_choice.choose_recipe("onnxruntime", weights, facts, tmp_path, pool, val, budget_s=1.0)
    assert first.tried >= 1 and first.selection_images == first.heldout_images == 4
    assert 0.0 <= first.int8_heldout <= 1.0 and 0.0 <= first.fp32_heldout <= 1.0

    def no_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("searched again for the same inputs")

    monkeypatch.setattr(int8_choice, "search_recipe", no_search)
    assert int8_choice.choose_recipe("onnxruntime", weights, facts, tmp_path, pool, val, budget_s=1.0) == first
    with pytest.raises(AssertionError, match="searched again"):  # another budget is another search
        int8_choice.choose_recipe("onnxruntime", weights, facts, tmp_path, pool, val, budget_s=2.0)
    with pytest.raises(AssertionError, match="searched again"):  # and so are other calibration images
        int8_choice.choose_recipe("onnxruntime", weights, facts, tmp_path, pool[:16], val, budget_s=1.0)


@pytest.mark.slow
def test_a_server_remakes_the_int8_model_at_another_batch_by_the_recorded_recipe(detector, tmp_path):
    from yoloforge.engines.base import EngineConfig, ModelFacts
    from yoloforge.engines.export import model_file
    from yoloforge.serving.served import ServedModel

    weights, data = detector
    recipe = Recipe("minmax", 16, ("model.0",))
    config = EngineConfig("onnxruntime", "int8", 1, 128)
    pool = calibration_images(data, "detect", 128, 16)
    measured = model_file(config, weights, tmp_path, pool, recipe)
    served = ServedModel(facts=ModelFacts.from_checkpoint(weights, imgsz=128), config=config, model_file=measured,
                         weights=weights, cache_dir=tmp_path, clean_dir=data, version="x", name="r", recipe=recipe,
                         calibration_count=16)
    batch2 = served.file_for(EngineConfig("onnxruntime", "int8", 2, 128))
    assert batch2.name == f"best-128-b2-int8-{recipe.tag()}.onnx"
    (b1,) = tmp_path.glob("best-128-b1-fp32-ranges-minmax-16-*.json")
    (b2,) = tmp_path.glob("best-128-b2-fp32-ranges-minmax-16-*.json")
    assert b1.stem.rsplit("-", 1)[1] == b2.stem.rsplit("-", 1)[1]  # calibrated on the same images as batch 1
    engine = served.load(batch=2)
    try:
        assert engine.infer(pool[:2]) is not None
    finally:
        engine.close()
