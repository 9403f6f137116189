"""The label parser: every kind of bad line, and the repairs it makes."""

from yoloforge.ray_app.intake.labels import check_label_text, looks_like_segment


def check(text: str, task: str = "detect", nc: int = 3):
    return check_label_text(text, nc=nc, task=task, width=100, height=100)


def test_valid_box_is_kept_unchanged():
    r = check("1 0.5 0.5 0.2 0.3\n")
    assert not r.quarantine and not r.issues
    assert r.clean_text == "1 0.5 0.5 0.2 0.3\n"
    assert r.boxes.tolist() == [[1, 20, 30]]


def test_empty_file_is_a_background():
    r = check("")
    assert not r.quarantine and r.clean_text == "" and len(r.boxes) == 0


def test_class_id_out_of_range_quarantines_with_line_and_range():
    r = check("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.1 0.1\n")
    assert r.quarantine
    assert r.issues[0].code == "class_out_of_range" and r.issues[0].line == 2
    assert "ids 0..2" in r.issues[0].message


def test_fractional_class_id_is_out_of_range():
    assert check("1.5 0.5 0.5 0.2 0.2").issues[0].code == "class_out_of_range"


def test_pixel_coordinates_are_recognised():
    r = check("0 320 240 50 60")
    assert r.quarantine and r.issues[0].code == "coords_out_of_range"
    assert "looks like pixels" in r.issues[0].message


def test_small_overshoot_is_clipped_not_quarantined():
    r = check("0 0.5 0.5 1.005 0.2")
    assert not r.quarantine
    assert [i.code for i in r.issues] == ["coords_clipped"]
    assert r.clean_text.split()[3] == "1"


def test_wrong_column_count_names_the_expected_format():
    r = check("0 0.5 0.5 0.2")
    assert r.quarantine and r.issues[0].code == "bad_columns"
    assert "4 values" in r.issues[0].message and "x_center" in r.issues[0].message


def test_non_number_is_reported_with_the_token():
    r = check("0 0.5 abc 0.2 0.2")
    assert r.issues[0].code == "not_a_number" and "'abc'" in r.issues[0].message


def test_nan_is_not_a_number():
    assert check("0 nan 0.5 0.2 0.2").issues[0].code == "not_a_number"


def test_degenerate_box_is_dropped():
    r = check("0 0.5 0.5 0.0 0.2\n1 0.5 0.5 0.2 0.2\n")
    assert not r.quarantine
    assert [i.code for i in r.issues] == ["degenerate_box"]
    assert r.clean_text == "1 0.5 0.5 0.2 0.2\n"


def test_duplicate_rows_are_dropped():
    r = check("1 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n")
    assert [i.code for i in r.issues] == ["duplicate_row"]
    assert r.clean_text.count("\n") == 1


def test_polygon_rows_are_valid_for_detect():
    r = check("0 0.1 0.1 0.5 0.1 0.5 0.5")
    assert not r.quarantine and r.boxes.tolist() == [[0, 40, 40]]


def test_box_in_segment_dataset_quarantines():
    r = check("0 0.5 0.5 0.2 0.2", task="segment")
    assert r.quarantine and r.issues[0].code == "box_only_in_segment"


def test_zero_area_polygon_is_dropped():
    r = check("0 0.1 0.1 0.2 0.2 0.3 0.3", task="segment")  # collinear points
    assert [i.code for i in r.issues] == ["degenerate_box"] and r.clean_text == ""


def test_segment_detection_by_majority_of_rows():
    assert looks_like_segment(["0 0.1 0.1 0.5 0.1 0.5 0.5\n", "1 0.1 0.1 0.5 0.1 0.5 0.5"])
    assert not looks_like_segment(["0 0.5 0.5 0.2 0.2\n"])
