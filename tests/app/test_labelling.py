"""Label-tab handlers on a real store and the tiny detector: pre-annotation, navigation, splits."""
import pytest
from PIL import Image

from app import store
from app.context import AppContext
from app.image_files import store_upload
from app.ui import labelling


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
    for box in value["boxes"]:
        assert box["label"] in ("red square", "blue circle")
        assert 0 <= box["xmin"] <= box["xmax"] <= 80 and 0 <= box["ymin"] <= box["ymax"] <= 64
    with context.database.session() as session:
        assert store.get_image(session, ids[0]).boxes == []  # proposals are not saved until the user saves
    message, revision = labelling.save_boxes(context, ids[0], 0, {"boxes": value["boxes"][:2]})
    assert "saved 2 boxes" in message and revision == 1


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
