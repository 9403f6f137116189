"""Datasets as users have them: Roboflow's YOLO export (split-first, `../` paths, as a folder, a data.yaml and a
zip), images-first, a data.yaml one folder down, .txt image lists, COCO JSON and Pascal VOC XML. Each is read for
the right task, class names and split sizes, with where each split came from, and the user's files untouched."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import yaml
from PIL import Image
from yoloforge.core.errors import DatasetError
from yoloforge.ray_app.intake.check import check_dataset
from yoloforge.ray_app.intake.report import DatasetReport
from yoloforge.ray_app.intake.synth import synth_dataset

from tests.conftest import tree_digest

NAMES = ["circle", "square", "triangle"]


def codes(report: DatasetReport) -> set[str]:
    return {p.code for p in report.problems}


def sizes(report: DatasetReport) -> dict[str, int]:
    return {split: s.images_clean for split, s in report.splits.items()}


def _move_split(src: Path, images: str, labels: str, dest: Path) -> None:
    shutil.copytree(src / "images" / images, dest / "images")
    shutil.copytree(src / "labels" / labels, dest / "labels")


@pytest.fixture
def roboflow(tmp_path: Path) -> Path:
    """Roboflow's "YOLOv8" export: split-first folders, valid/ for val, `../` paths, a test split."""
    shapes = synth_dataset(tmp_path / "shapes", "detect", n_train=6, n_val=3, imgsz=64, seed=4)
    root = tmp_path / "roboflow"
    _move_split(shapes, "train", "train", root / "train")
    _move_split(shapes, "val", "val", root / "valid")
    test = root / "test"
    _move_split(shapes, "val", "val", test)
    for k, img in enumerate(sorted((test / "images").glob("*.jpg"))):  # other bytes: not duplicates of val
        Image.fromarray(np.full((64, 64, 3), 40 * k, np.uint8)).save(img)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
                                    f"nc: 3\nnames: {NAMES}\n\nroboflow:\n  workspace: someone\n  version: 1\n")
    (root / "README.roboflow.txt").write_text("exported from roboflow.com")
    return root


def _check_roboflow(report: DatasetReport) -> None:
    assert report.ok, report.problems
    assert report.layout == "yolo" and report.task == "detect" and report.names == NAMES
    assert sizes(report) == {"train": 6, "val": 3, "test": 3}
    assert report.split_sources["train"] == "train/images (data.yaml says ../train/images)"
    assert report.split_sources["val"] == "valid/images (data.yaml says ../valid/images)"
    assert "path_fallback" in codes(report)


def test_roboflow_export_folder_is_read_as_detect_with_its_three_splits(roboflow):
    before = tree_digest(roboflow)
    _check_roboflow(check_dataset(roboflow).report)
    assert tree_digest(roboflow) == before


def test_roboflow_export_data_yaml_is_read_with_the_dot_dot_fallback(roboflow):
    _check_roboflow(check_dataset(roboflow / "data.yaml").report)


def test_roboflow_export_zip_is_read(roboflow, tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # as downloaded: the export's files at the archive's root
        for p in roboflow.rglob("*"):
            zf.write(p, p.relative_to(roboflow))
    before = archive.read_bytes()
    _check_roboflow(check_dataset(archive, work_dir=tmp_path / "run").report)
    assert archive.read_bytes() == before


def test_data_yaml_one_folder_down_decides(roboflow, tmp_path):
    outer = tmp_path / "download"
    outer.mkdir()
    shutil.move(roboflow, outer / "tomato-1")
    _check_roboflow(check_dataset(outer).report)


def test_the_test_split_is_kept_in_the_clean_copy(roboflow, tmp_path):
    intake = check_dataset(roboflow)
    clean = intake.write_clean(tmp_path / "run")
    data = yaml.safe_load((clean / "data.yaml").read_text())
    assert data["test"] == "images/test" and len(list((clean / "images" / "test").glob("*.jpg"))) == 3
    assert len(list((clean / "labels" / "test").glob("*.txt"))) == 3


def test_a_test_split_that_does_not_exist_is_a_warning_not_an_error(roboflow):
    shutil.rmtree(roboflow / "test")
    report = check_dataset(roboflow).report
    assert report.ok and "test" not in report.splits
    missing = next(p for p in report.problems if p.code == "split_missing")
    assert missing.severity == "warning" and "test: ../test/images" in missing.message and missing.file == "data.yaml"


def test_a_yolo_export_without_data_yaml_is_not_taken_for_classification(roboflow):
    (roboflow / "data.yaml").unlink()
    with pytest.raises(DatasetError, match="YOLO export") as err:
        check_dataset(roboflow)
    assert "classes named 'images' and 'labels'" in err.value.message
    assert "train: train/images" in str(err.value.fix) and "val: valid/images" in str(err.value.fix)


def test_images_first_layout_is_read(tmp_path):
    shapes = synth_dataset(tmp_path / "shapes", "detect", n_train=6, n_val=3, imgsz=64, seed=4)
    report = check_dataset(shapes).report
    assert report.ok and report.layout == "yolo" and report.task == "detect"
    assert sizes(report) == {"train": 6, "val": 3}
    assert report.split_sources == {"train": "images/train", "val": "images/val"}


def test_txt_image_lists_are_read_relative_to_the_list(tmp_path):
    shapes = synth_dataset(tmp_path / "shapes", "detect", n_train=6, n_val=3, imgsz=64, seed=4)
    (shapes / "lists").mkdir()
    (shapes / "lists" / "train.txt").write_text("\n".join(f"../images/train/train_{k:05d}.jpg" for k in range(6)))
    (shapes / "data.yaml").write_text(yaml.safe_dump({"train": "lists/train.txt", "val": "images/val",
                                                      "names": NAMES}))
    report = check_dataset(shapes).report
    assert report.ok and sizes(report) == {"train": 6, "val": 3}


def test_val_and_valid_folder_names_stand_in_for_each_other(tmp_path):
    shapes = synth_dataset(tmp_path / "shapes", "detect", n_train=6, n_val=3, imgsz=64, seed=4)
    (shapes / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/valid",
                                                      "names": NAMES}))
    report = check_dataset(shapes).report
    assert report.ok and sizes(report)["val"] == 3
    assert report.split_sources["val"] == "images/val (data.yaml says images/valid)"


def test_a_path_from_another_machine_is_matched_by_its_tail(tmp_path):
    shapes = synth_dataset(tmp_path / "shapes", "detect", n_train=6, n_val=3, imgsz=64, seed=4)
    (shapes / "data.yaml").write_text(yaml.safe_dump({
        "train": "/content/drive/MyDrive/shapes/images/train", "val": "/content/drive/MyDrive/shapes/images/val",
        "names": NAMES}))
    report = check_dataset(shapes).report
    assert report.ok and sizes(report) == {"train": 6, "val": 3}
    assert report.split_sources["train"].startswith("images/train (data.yaml says /content/")


def test_a_split_left_with_no_usable_image_is_an_error_that_names_it(tmp_path):
    shapes = synth_dataset(tmp_path / "shapes", "detect", n_train=6, n_val=3, imgsz=64, seed=4)
    for img in (shapes / "images" / "val").glob("*.jpg"):
        img.write_bytes(b"not an image")
    report = check_dataset(shapes, max_bad_fraction=1.0).report
    assert not report.ok
    error = next(p for p in report.problems if p.code == "split_unusable")
    assert error.severity == "error" and "no usable val image: 3 found, 3 quarantined" in error.message



@pytest.mark.parametrize(("split", "code", "says"), [("train", "split_empty", "the train split has no image"),
                                                      ("val", "val_missing", "its val folder no image")])
def test_a_split_whose_folder_holds_no_image_is_an_error(tmp_path, split, code, says):
    shapes = synth_dataset(tmp_path / "shapes", "detect", n_train=6, n_val=3, imgsz=64, seed=4)
    for img in (shapes / "images" / split).glob("*.jpg"):
        img.unlink()
    report = check_dataset(shapes).report
    assert not report.ok
    error = next(p for p in report.problems if p.code == code)
    assert error.severity == "error" and says in error.message


# --- COCO JSON ----------------------------------------------------------------------------------------------


def _coco_from(shapes: Path, root: Path, split: str, with_polygons: bool) -> dict:
    """COCO of one synthetic split, with category ids 1..3 under a Roboflow-style supercategory of id 0."""
    images, annotations = [], []
    for k, img in enumerate(sorted((shapes / "images" / split).glob("*.jpg"))):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        shutil.copy2(img, root / "images" / split / img.name)
        w, h = Image.open(img).size
        images.append({"id": 100 + k, "file_name": img.name, "width": w, "height": h})
        for row in (shapes / "labels" / split / f"{img.stem}.txt").read_text().splitlines():
            values = [float(v) for v in row.split()]
            xy = np.asarray(values[1:]).reshape(-1, 2) * [w, h]
            x0, y0 = xy.min(axis=0)
            x1, y1 = xy.max(axis=0)
            annotations.append({"id": len(annotations) + 1, "image_id": 100 + k, "category_id": int(values[0]) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0)),
                                "segmentation": [xy.ravel().tolist()] if with_polygons else [], "iscrowd": 0})
    annotations.append({"id": 9999, "image_id": 100, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
                        "segmentation": {"size": [64, 64], "counts": "abc"}, "iscrowd": 1})
    categories = [{"id": 0, "name": "shapes", "supercategory": "none"}]
    categories += [{"id": k + 1, "name": n, "supercategory": "shapes"} for k, n in enumerate(NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _coco(tmp_path: Path, with_polygons: bool) -> Path:
    shapes = synth_dataset(tmp_path / "shapes", "segment", n_train=6, n_val=3, imgsz=64, seed=5)
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        coco = _coco_from(shapes, root, split, with_polygons)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


def test_coco_with_polygons_becomes_a_segment_dataset_with_crowds_skipped_and_ids_remapped(tmp_path):
    root = _coco(tmp_path, with_polygons=True)
    before = tree_digest(root)
    intake = check_dataset(root)
    report = intake.report
    assert report.ok, report.problems
    assert report.layout == "coco" and report.task == "segment" and report.names == NAMES
    assert sizes(report) == {"train": 6, "val": 3}
    assert report.split_sources["train"] == "COCO annotations/instances_train.json"
    crowd = next(p for p in report.problems if p.code == "crowd_skipped")
    assert "1 annotation(s) skipped" in crowd.message and crowd.file == "annotations/instances_train.json"
    assert "category_ids_remapped" in codes(report) and "category_dropped" in codes(report)
    clean = intake.write_clean(tmp_path / "run")
    label = (clean / "labels" / "train" / "train_00000.txt").read_text().splitlines()
    assert label and all(len(row.split()) >= 7 and row.split()[0] in "012" for row in label)
    assert tree_digest(root) == before


def test_coco_with_boxes_only_becomes_a_detect_dataset_equal_to_the_yolo_labels(tmp_path):
    root = _coco(tmp_path, with_polygons=False)
    intake = check_dataset(root)
    assert intake.report.ok and intake.report.task == "detect"
    total = sum(s.instances for s in intake.report.splits.values())
    yolo = check_dataset(tmp_path / "shapes", task="detect").report
    assert total == sum(s.instances for s in yolo.splits.values())


def test_coco_problems_name_the_annotation_file(tmp_path):
    root = _coco(tmp_path, with_polygons=False)
    path = root / "annotations" / "instances_train.json"
    coco = json.loads(path.read_text())
    coco["images"].append({"id": 5000, "file_name": "gone.jpg", "width": 64, "height": 64})
    coco["annotations"].append({"id": 5001, "image_id": 100, "category_id": 42, "bbox": [1, 1, 5, 5]})
    coco["annotations"].append({"id": 5002, "image_id": 101, "category_id": 1, "bbox": [50, 50, 40, 40]})
    path.write_text(json.dumps(coco))
    report = check_dataset(root).report
    found = {p.code: p for p in report.problems}
    assert "gone.jpg" in found["image_missing"].message
    assert "category id 42" in found["annotation_skipped"].message
    assert found["image_missing"].file == found["annotation_skipped"].file == "annotations/instances_train.json"
    outside = found["coords_out_of_range"]
    assert outside.file == "annotations/instances_train.json" and "train_00001.jpg" in outside.message


def test_roboflow_coco_export_with_annotations_beside_the_images_is_read(tmp_path):
    root = _coco(tmp_path, with_polygons=False)
    export = tmp_path / "roboflow-coco"
    for split, folder in (("train", "train"), ("val", "valid")):
        shutil.copytree(root / "images" / split, export / folder)
        shutil.copy2(root / "annotations" / f"instances_{split}.json", export / folder / "_annotations.coco.json")
    report = check_dataset(export).report
    assert report.ok and report.layout == "coco" and sizes(report) == {"train": 6, "val": 3}
    assert report.split_sources["val"] == "COCO valid/_annotations.coco.json"


def test_broken_coco_json_names_the_line(tmp_path):
    root = _coco(tmp_path, with_polygons=False)
    (root / "annotations" / "instances_val.json").write_text('{"images": [], "annotations": [\n  oops]}')
    with pytest.raises(DatasetError, match="not valid JSON") as err:
        check_dataset(root)
    assert err.value.where.endswith("instances_val.json:2")


# --- Pascal VOC ---------------------------------------------------------------------------------------------


def _voc(tmp_path: Path) -> Path:
    shapes = synth_dataset(tmp_path / "shapes", "detect", n_train=6, n_val=3, imgsz=64, seed=6)
    root = tmp_path / "voc"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for split in ("train", "val"):
        stems = []
        for img in sorted((shapes / "images" / split).glob("*.jpg")):
            shutil.copy2(img, root / "JPEGImages" / img.name)
            stems.append(img.stem)
            ann = ET.Element("annotation")
            ET.SubElement(ann, "filename").text = img.name
            size = ET.SubElement(ann, "size")
            for key, value in (("width", 64), ("height", 64), ("depth", 3)):
                ET.SubElement(size, key).text = str(value)
            for row in (shapes / "labels" / split / f"{img.stem}.txt").read_text().splitlines():
                c, x, y, w, h = (float(v) for v in row.split())
                obj = ET.SubElement(ann, "object")
                ET.SubElement(obj, "name").text = NAMES[int(c)]
                box = ET.SubElement(obj, "bndbox")
                for key, value in (("xmin", (x - w / 2) * 64 + 1), ("ymin", (y - h / 2) * 64 + 1),
                                   ("xmax", (x + w / 2) * 64 + 1), ("ymax", (y + h / 2) * 64 + 1)):
                    ET.SubElement(box, key).text = f"{value:.1f}"
            ET.ElementTree(ann).write(root / "Annotations" / f"{img.stem}.xml")
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


def test_pascal_voc_becomes_a_detect_dataset_with_its_image_sets(tmp_path):
    root = _voc(tmp_path)
    before = tree_digest(root)
    intake = check_dataset(root)
    report = intake.report
    assert report.ok, report.problems
    assert report.layout == "voc" and report.task == "detect" and report.names == NAMES  # alphabetical here
    assert sizes(report) == {"train": 6, "val": 3}
    assert report.split_sources["val"] == "VOC ImageSets/Main/val.txt"
    yolo = (tmp_path / "shapes" / "labels" / "train" / "train_00000.txt").read_text().split()
    clean = intake.write_clean(tmp_path / "run")
    ours = (clean / "labels" / "train" / "train_00000.txt").read_text().split()
    assert np.allclose([float(v) for v in ours], [float(v) for v in yolo], atol=2 / 64)
    assert tree_digest(root) == before


def test_voc_class_order_comes_from_labelmap_and_unknown_names_are_named(tmp_path):
    root = _voc(tmp_path)
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ntriangle:1,2,3::\n"
                                       "square:4,5,6::\ncircle:7,8,9::\n")
    xml = root / "Annotations" / "train_00000.xml"
    xml.write_text(xml.read_text().replace("<name>", "<name>x", 1))
    report = check_dataset(root).report
    assert report.names == ["triangle", "square", "circle"]
    unknown = next(p for p in report.problems if p.code == "unknown_class")
    assert unknown.file == "Annotations/train_00000.xml" and "object 'x" in unknown.message


def test_a_single_coco_file_at_the_root_is_the_train_split_and_asks_for_a_val_split(tmp_path):
    root = _coco(tmp_path, with_polygons=False)
    shutil.move(root / "annotations" / "instances_train.json", root / "result.json")  # Label Studio's export
    shutil.rmtree(root / "annotations")
    report = check_dataset(root).report
    assert report.layout == "coco" and sizes(report) == {"train": 6}
    assert not report.ok and "val_missing" in codes(report)
    report = check_dataset(root, val_split=0.34).report
    assert report.ok and sizes(report) == {"train": 4, "val": 2}


def test_a_copied_dataset_whose_data_yaml_names_the_original_says_it_reads_the_original(tmp_path):
    from yoloforge.ray_app.intake.synth import synth_dataset

    original = synth_dataset(tmp_path / "original", "detect", n_train=4, n_val=2, imgsz=64)
    copy = shutil.copytree(original, tmp_path / "copy")  # data.yaml still says path: <original>
    report = check_dataset(str(copy)).report
    assert report.ok and "path_elsewhere" in codes(report)
    assert "path_elsewhere" not in codes(check_dataset(str(original)).report)
