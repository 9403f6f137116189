"""Dataset intake: each problem a user's upload can have gives its own message, file and fix; none a traceback."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from yoloforge.core.errors import DatasetError
from yoloforge.ray_app.intake.check import IMG_SUFFIXES, check_dataset
from yoloforge.ray_app.intake.report import FIXES, DatasetReport

from tests.conftest import tree_digest


def codes(report: DatasetReport, severity: str | None = None) -> set[str]:
    return {p.code for p in report.problems if severity is None or p.severity == severity}


def first(report: DatasetReport, code: str):
    return next(p for p in report.problems if p.code == code)


def label(ds: Path, split: str = "train", k: int = 0) -> Path:
    return ds / "labels" / split / f"{split}_{k:05d}.txt"


def image(ds: Path, split: str = "train", k: int = 0) -> Path:
    return ds / "images" / split / f"{split}_{k:05d}.jpg"


# --- a clean dataset ------------------------------------------------------------------------------------


def test_clean_synthetic_dataset_has_no_problems(detect_ds):
    report = check_dataset(detect_ds).report
    assert report.ok and report.problems == []
    assert report.task == "detect" and report.names == ["circle", "square", "triangle"]
    assert report.splits["train"].images_clean == 10 and report.splits["val"].images_clean == 5


def test_report_counts_objects_per_class_and_box_sizes(detect_ds):
    report = check_dataset(detect_ds).report
    total = sum(c["train"]["instances"] for c in report.class_counts.values())
    assert total == report.splits["train"].instances > 0
    assert report.box_stats["width_px"]["min"] > 0


def test_segment_task_is_inferred_from_polygon_labels(segment_ds):
    assert check_dataset(segment_ds).report.task == "segment"


def test_every_problem_code_has_a_fix():
    report_codes = {"corrupt_image", "class_out_of_range", "val_missing", "duplicate_image", "label_orphan"}
    assert report_codes <= set(FIXES)


def test_image_formats_match_ultralytics():
    from ultralytics.data.utils import IMG_FORMATS

    assert {s[1:] for s in IMG_SUFFIXES} == set(IMG_FORMATS)


# --- images ---------------------------------------------------------------------------------------------


def test_corrupt_image_is_quarantined_with_its_file(detect_ds):
    image(detect_ds).write_bytes(b"\xff\xd8 this is not really a jpeg")
    report = check_dataset(detect_ds).report
    p = first(report, "corrupt_image")
    assert p.file == "images/train/train_00000.jpg" and p.action == "quarantined" and p.severity == "warning"
    assert report.splits["train"].quarantined == 1 and report.ok


def test_empty_image_file_is_corrupt(detect_ds):
    image(detect_ds).write_bytes(b"")
    assert "empty file" in first(check_dataset(detect_ds).report, "corrupt_image").message


def test_truncated_image_is_corrupt(detect_ds):
    data = image(detect_ds).read_bytes()
    image(detect_ds).write_bytes(data[: len(data) // 2])
    assert "corrupt_image" in codes(check_dataset(detect_ds).report)


def test_unsupported_file_in_images_folder_is_ignored_with_a_warning(detect_ds):
    (detect_ds / "images" / "train" / "anim.gif").write_bytes(b"GIF89a")
    p = first(check_dataset(detect_ds).report, "unsupported_image")
    assert p.file.endswith("anim.gif") and p.action == "ignored"


def test_tiny_image_is_quarantined(detect_ds):
    from PIL import Image

    Image.new("RGB", (5, 5)).save(image(detect_ds))
    assert "5x5" in first(check_dataset(detect_ds).report, "image_too_small").message


# --- labels ---------------------------------------------------------------------------------------------


def test_missing_label_file_makes_a_background_image(detect_ds):
    label(detect_ds).unlink()
    intake = check_dataset(detect_ds)
    p = first(intake.report, "label_missing")
    assert p.action == "kept as background" and p.file == "images/train/train_00000.jpg"
    assert intake.report.splits["train"].backgrounds == 1


def test_orphan_label_file_is_reported(detect_ds):
    (detect_ds / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert first(check_dataset(detect_ds).report, "label_orphan").file == "labels/train/ghost.txt"


def test_class_id_out_of_range_names_file_and_line(detect_ds):
    label(detect_ds).write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n")
    p = first(check_dataset(detect_ds).report, "class_out_of_range")
    assert p.file == "labels/train/train_00000.txt" and p.line == 2 and p.action == "quarantined"


def test_coordinates_outside_unit_range_are_reported(detect_ds):
    label(detect_ds).write_text("0 1.7 0.5 0.2 0.2\n")
    assert "coords_out_of_range" in codes(check_dataset(detect_ds).report)


def test_wrong_column_count_is_reported(detect_ds):
    label(detect_ds).write_text("0 0.5 0.5 0.2 0.2 0.9\n")
    assert "6 values" in first(check_dataset(detect_ds).report, "bad_columns").message


def test_degenerate_box_is_dropped_from_clean_label(detect_ds, tmp_path):
    label(detect_ds).write_text("0 0.5 0.5 0.0 0.2\n1 0.5 0.5 0.3 0.3\n")
    intake = check_dataset(detect_ds)
    assert first(intake.report, "degenerate_box").action == "repaired"
    clean = intake.write_clean(tmp_path / "out")
    assert (clean / "labels" / "train" / "train_00000.txt").read_text() == "1 0.5 0.5 0.3 0.3\n"


def test_binary_label_file_is_unreadable(detect_ds):
    label(detect_ds).write_bytes(b"\xff\xfe\x00\x81")
    assert "label_unreadable" in codes(check_dataset(detect_ds).report)


def test_no_label_files_at_all_is_an_error(detect_ds):
    shutil.rmtree(detect_ds / "labels" / "train")
    report = check_dataset(detect_ds).report
    assert not report.ok and "labels/train/train_00000.txt" in first(report, "labels_not_found").message


# --- duplicates and splits ------------------------------------------------------------------------------


def test_duplicate_image_in_same_split_is_left_out(detect_ds):
    shutil.copy(image(detect_ds, k=0), detect_ds / "images" / "train" / "copy.jpg")
    shutil.copy(label(detect_ds, k=0), detect_ds / "labels" / "train" / "copy.txt")
    report = check_dataset(detect_ds).report
    assert first(report, "duplicate_image").file == "images/train/train_00000.jpg"
    assert report.splits["train"].images_clean == 10


def test_image_in_both_train_and_val_is_left_out_of_val(detect_ds):
    shutil.copy(image(detect_ds, "train", 0), detect_ds / "images" / "val" / "leak.jpg")
    shutil.copy(label(detect_ds, "train", 0), detect_ds / "labels" / "val" / "leak.txt")
    p = first(check_dataset(detect_ds).report, "duplicate_across_splits")
    assert p.file == "images/val/leak.jpg" and "inflated" in p.message


def test_missing_val_split_is_an_error_that_offers_a_seeded_split(detect_ds):
    cfg = yaml.safe_load((detect_ds / "data.yaml").read_text())
    del cfg["val"]
    (detect_ds / "data.yaml").write_text(yaml.safe_dump(cfg))
    report = check_dataset(detect_ds).report
    assert not report.ok and "--split-val" in first(report, "val_missing").fix


def test_seeded_val_split_is_reproducible(detect_ds, tmp_path):
    cfg = yaml.safe_load((detect_ds / "data.yaml").read_text())
    del cfg["val"]
    (detect_ds / "data.yaml").write_text(yaml.safe_dump(cfg))
    picks = []
    for k in range(2):
        intake = check_dataset(detect_ds, val_split=0.3, split_seed=5)
        assert intake.report.ok and intake.report.splits["val"].images_clean == 3
        clean = intake.write_clean(tmp_path / f"out{k}")
        picks.append(sorted(p.name for p in (clean / "images" / "val").iterdir()))
    assert picks[0] == picks[1]


def test_too_many_bad_images_is_an_error(detect_ds):
    for k in range(4):
        label(detect_ds, k=k).write_text("9 0.5 0.5 0.2 0.2\n")
    report = check_dataset(detect_ds).report
    assert "too_many_bad" in codes(report, "error")
    assert "4 of 10 train images (40%)" in first(report, "too_many_bad").message
    assert check_dataset(detect_ds, max_bad_fraction=0.5).report.ok


# --- data.yaml ------------------------------------------------------------------------------------------


def test_missing_data_yaml_suggests_one(detect_ds):
    (detect_ds / "data.yaml").unlink()
    with pytest.raises(DatasetError) as err:
        check_dataset(detect_ds)
    assert "no data.yaml" in err.value.message and "train: images/train" in err.value.fix


def test_data_yaml_syntax_error_names_the_line(detect_ds):
    (detect_ds / "data.yaml").write_text("train: images/train\nnames: [a, b\nval: x\n")
    with pytest.raises(DatasetError) as err:
        check_dataset(detect_ds)
    assert "data.yaml:" in err.value.where and "not valid YAML" in err.value.message


def test_nc_disagreeing_with_names_is_an_error(detect_ds):
    cfg = yaml.safe_load((detect_ds / "data.yaml").read_text())
    cfg["nc"] = 5
    (detect_ds / "data.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(DatasetError, match="nc is 5 but 3 names"):
        check_dataset(detect_ds)


def test_split_folder_that_does_not_exist_is_an_error(detect_ds):
    cfg = yaml.safe_load((detect_ds / "data.yaml").read_text())
    cfg["val"] = "images/holdout"
    (detect_ds / "data.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(DatasetError, match="val: images/holdout does not exist"):
        check_dataset(detect_ds)


def test_stale_absolute_path_in_data_yaml_falls_back_to_its_folder(detect_ds):
    cfg = yaml.safe_load((detect_ds / "data.yaml").read_text())
    cfg["path"] = "/home/someone-else/datasets/shapes"
    (detect_ds / "data.yaml").write_text(yaml.safe_dump(cfg))
    assert check_dataset(detect_ds).report.ok


def test_txt_file_split_lists_are_read(detect_ds):
    listing = "\n".join(f"./images/val/val_{k:05d}.jpg" for k in range(5))
    (detect_ds / "val.txt").write_text(listing)
    cfg = yaml.safe_load((detect_ds / "data.yaml").read_text())
    cfg["val"] = "val.txt"
    (detect_ds / "data.yaml").write_text(yaml.safe_dump(cfg))
    assert check_dataset(detect_ds).report.splits["val"].images_clean == 5


def test_not_a_dataset_folder_is_explained(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="not a dataset layout"):
        check_dataset(tmp_path / "x")


def test_missing_path_is_explained(tmp_path):
    from yoloforge.core.errors import MissingInput

    with pytest.raises(MissingInput, match="does not exist"):
        check_dataset(tmp_path / "nope")


# --- class names vs model -------------------------------------------------------------------------------


def test_names_in_another_order_than_the_model_is_an_error(detect_ds):
    report = check_dataset(detect_ds, model_names=["square", "circle", "triangle"]).report
    p = first(report, "class_names_mismatch")
    assert p.severity == "error" and "id 0: dataset 'circle' vs model 'square'" in p.message


def test_name_order_mismatch_can_be_allowed(detect_ds):
    report = check_dataset(detect_ds, model_names=["square", "circle", "triangle"], allow_name_mismatch=True).report
    assert report.ok and "class_names_mismatch" in codes(report, "warning")


def test_different_classes_from_the_model_is_a_warning(detect_ds):
    report = check_dataset(detect_ds, model_names=["person", "car"]).report
    assert report.ok and "only in model: person, car" in first(report, "class_names_differ").message


# --- zip, clean copy, user files untouched -------------------------------------------------------------


def test_zip_dataset_is_unpacked_into_the_work_dir(detect_ds, tmp_path):
    archive = tmp_path / "ds.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in detect_ds.rglob("*"):
            zf.write(p, Path("shapes") / p.relative_to(detect_ds))
    intake = check_dataset(archive, work_dir=tmp_path / "run")
    assert intake.report.ok and intake.report.splits["train"].images_clean == 10


def test_zip_with_path_escaping_member_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escape.txt", "x")
    with pytest.raises(DatasetError, match="outside the folder"):
        check_dataset(archive, work_dir=tmp_path / "run")
    assert not (tmp_path.parent / "escape.txt").exists()


def test_broken_zip_is_explained(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DatasetError, match="not a readable zip"):
        check_dataset(tmp_path / "bad.zip", work_dir=tmp_path / "run")


def test_user_files_are_never_modified_and_bad_files_are_quarantined_as_copies(detect_ds, tmp_path):
    image(detect_ds, k=1).write_bytes(b"garbage")
    label(detect_ds, k=2).write_text("0 0.5 0.5 0.0 0.1\n1 0.5 0.5 0.2 0.2\n")
    before = tree_digest(detect_ds)
    intake = check_dataset(detect_ds)
    clean = intake.write_clean(tmp_path / "run")
    assert tree_digest(detect_ds) == before
    assert (tmp_path / "run" / "quarantine" / "images" / "train" / "train_00001.jpg").read_bytes() == b"garbage"
    assert not (clean / "images" / "train" / "train_00001.jpg").exists()
    assert yaml.safe_load((clean / "data.yaml").read_text())["names"] == {0: "circle", 1: "square", 2: "triangle"}


def test_report_round_trips_as_json(detect_ds, tmp_path):
    report = check_dataset(detect_ds).report
    path = report.write(tmp_path / "dataset_report.json")
    assert DatasetReport.model_validate_json(path.read_text()) == report


# --- classify layout ------------------------------------------------------------------------------------


def test_classify_layout_is_recognised(classify_ds):
    report = check_dataset(classify_ds).report
    assert report.ok and report.task == "classify" and report.names == ["circle", "square", "triangle"]
    assert report.class_counts["circle"]["train"]["images"] == 4


def test_classify_class_only_in_val_is_an_error(classify_ds):
    (classify_ds / "val" / "hexagon").mkdir()
    shutil.copy(next((classify_ds / "val" / "circle").iterdir()), classify_ds / "val" / "hexagon" / "h.jpg")
    assert "class_missing_in_train" in codes(check_dataset(classify_ds).report, "error")


def test_classify_stray_file_and_empty_class_are_warnings(classify_ds):
    (classify_ds / "train" / "loose.jpg").write_bytes(b"x")
    (classify_ds / "train" / "hexagon").mkdir()
    report = check_dataset(classify_ds).report
    assert {"stray_file", "empty_class"} <= codes(report, "warning")


def test_classify_missing_val_gets_a_stratified_seeded_split(classify_ds, tmp_path):
    shutil.rmtree(classify_ds / "val")
    intake = check_dataset(classify_ds, val_split=0.25)
    assert intake.report.ok
    clean = intake.write_clean(tmp_path / "run")
    assert sorted(p.name for p in (clean / "val").iterdir()) == ["circle", "square", "triangle"]


def test_classify_layout_with_detect_task_is_explained(classify_ds):
    with pytest.raises(DatasetError, match="classification layout"):
        check_dataset(classify_ds, task="detect")
