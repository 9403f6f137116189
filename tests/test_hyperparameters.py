"""Which hyperparameters Ultralytics' trainer ignores at a budget, so the search does not spend trials on them."""

from yoloforge.ray_app.search.hyperparameters import ULTRALYTICS_DEFAULTS, inert_genes, without_inert_genes, yolo_space


def test_mosaic_and_mixup_cannot_act_when_every_epoch_is_a_close_mosaic_epoch():
    assert {"mosaic", "mixup"} <= set(inert_genes("detect", 10, {}))
    assert not {"mosaic", "mixup"} & set(inert_genes("detect", 11, {}))


def test_close_mosaic_set_by_the_job_moves_the_line():
    assert "mosaic" not in inert_genes("detect", 8, {"close_mosaic": 0})
    assert "mosaic" in inert_genes("detect", 30, {"close_mosaic": 30})


def test_classification_ignores_the_detection_loss_gains_and_geometry():
    why = inert_genes("classify", 100, {})
    assert {"box", "cls", "dfl", "degrees", "translate", "mosaic"} <= set(why)
    assert not {"lr0", "hsv_h", "fliplr", "scale"} & set(why)  # classify_augmentations uses these


def test_inert_genes_are_fixed_to_ultralytics_defaults_and_said_why():
    space, why = without_inert_genes(yolo_space(), "detect", 5, ULTRALYTICS_DEFAULTS)
    assert "mosaic" not in space.names and space.fixed["mosaic"] == 1.0 and "close_mosaic" in why["mosaic"]
    assert space.decode(space.encode([{**ULTRALYTICS_DEFAULTS}]))[0]["mosaic"] == 1.0


def test_a_budget_where_every_gene_acts_leaves_the_space_alone():
    space = yolo_space()
    assert without_inert_genes(space, "detect", 50, ULTRALYTICS_DEFAULTS) == (space, {})
