"""Label-tab handlers on a real store and the tiny detector: pre-annotation, navigation, splits."""
import pytest
from PIL import Image

from app import store
from app.context import AppContext
from app.image_files import store_upload
from app.ui import display_scale, labelling


@pytest.fixture
def context(settings, database, ui_models):
    return AppContext(database, settings, ui_models)


@pytest.fixture
def project_with_images(context, tmp_path):
    with context.database.session() as session:
        project = store.create_project(session, "Pre").id
        store.add_class(session, project, "red square")
        store.add_class(session, project, "blue circle")
        ids = []
        for k in range(3):
            path = tmp_path / f"p{k}.png"
            Image.new("RGB", (80 + k, 64), (30 * k, 100, 100)).save(path)
            ids.append(store.add_image(session, project, store_upload(path, context.settings.images_dir, 2**20))[0].id)
    return project, ids


def test_preannotation_proposes_editable_boxes_of_project_classes(context, project_with_images):
    project, ids = project_with_images
    value, message = labelling.preannotate(context, project, ids[0], "zero-shot", 0.0, None)
    assert "proposed" in message and value["boxes"]
    k = display_scale.factor(80, 64)  # the 80x64 image is shown 6x larger, and so are its boxes
    assert k == 6 and Image.open(value["image"]).size == (80 * k, 64 * k)
    for box in value["boxes"]:
        assert box["label"] in ("red square", "blue circle")
        assert 0 <= box["xmin"] <= box["xmax"] <= 80 * k and 0 <= box["ymin"] <= box["ymax"] <= 64 * k
    with context.database.session() as session:
        assert store.get_image(session, ids[0]).boxes == []  # proposals are not saved until the user saves
    message, revision = labelling.save_boxes(context, ids[0], 0, {"boxes": value["boxes"][:2]})
    assert "saved 2 boxes" in message and revision == 1
    with context.database.session() as session:  # stored in the image's own pixels
        saved = store.boxes_of(store.get_image(session, ids[0]))
    assert [round(b["xmin"] * k, 3) for b in saved] == [round(b["xmin"], 3) for b in value["boxes"][:2]]
    shown, _revision, _split, info = labelling.editor_value(context, ids[0])
    assert "(shown x6)" in info and [b["xmax"] for b in shown["boxes"]] == \
        pytest.approx([b["xmax"] for b in value["boxes"][:2]])  # back on the page where they were drawn


def test_preannotation_with_no_prompt_yet_says_what_to_do(context, project_with_images):
    project, ids = project_with_images
    current = {"image": "x", "boxes": []}
    value, message = labelling.preannotate(context, project, ids[0], "latest prompt", 0.3, current)
    assert value is current and "press Tune first" in message


def test_navigation_and_split(context, project_with_images):
    project, ids = project_with_images
    assert labelling.neighbour(context, project, ids[0], +1) == ids[1]
    assert labelling.neighbour(context, project, ids[0], -1) == ids[2]  # wraps around
    assert "heldout" in labelling.set_split(context, ids[1], "heldout")
    labels = [label for label, _ in labelling.image_choices(context, project)]
    assert "heldout" in labels[1] and "train" in labels[0]


def test_review_shows_a_small_image_larger_and_an_edit_comes_back_in_image_pixels(context, project_with_images):
    from app import suggestions
    from app.ui import review

    project, ids = project_with_images
    with context.database.session() as session:
        suggestions.write_suggestions(session, ids[0], [
            {"label": "red square", "xmin": 10, "ymin": 8, "xmax": 30, "ymax": 28, "score": 0.9, "uncertainty": 0.1}],
            "zero-shot", None, None)
    value, revision, info = review.editor_value(context, ids[0])
    (shown,) = value["boxes"]
    assert (shown["xmin"], shown["ymax"]) == (60, 168) and Image.open(value["image"]).size == (480, 384)
    moved = {**shown, "xmin": shown["xmin"] + 12}  # the reviewer drags its left edge 2 image pixels right
    message = review.accept_edited(context, ids[0], revision, {"boxes": [moved]})
    assert "1 suggestions accepted as edited" in message, message
    with context.database.session() as session:
        (saved,) = store.boxes_of(store.get_image(session, ids[0]))
    assert (saved["xmin"], saved["ymin"], saved["xmax"], saved["ymax"]) == (12, 8, 30, 28)
