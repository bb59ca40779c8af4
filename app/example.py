"""The example project: made offline in seconds with sdpt's own synthetic generator, from a transfer task the
shipped small model can learn, so a newcomer can run the whole labelling loop without data of their own."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterator

from sqlalchemy import select

from app import store
from app.image_files import store_upload
from app.models import DEFAULT_OWNER, Project
from app.settings import Settings

logger = logging.getLogger(__name__)

# `many` (sdpt/synthetic/grounding.py): coloured shapes, some in colour words the model never saw in pre-training
# ("purple", "cyan"); zero-shot finds a good part of them (mAP@.5 0.38 in BENCHMARKS.md), tuning on a few images
# adds to that, so both the first suggestions and the learning curve are worth looking at.
EXAMPLE_TASK = "many"
EXAMPLE_SEED = 2026
TRAIN_LABELLED, UNLABELLED, HELDOUT = 8, 40, 20
EXAMPLE_NAME = "Example: coloured shapes"

DESCRIPTION = """**Example project** (made on this machine from the app's synthetic generator): coloured shapes,
{classes} classes, some in colours the model has never seen named (purple, cyan).
{train} training images are labelled, {unlabelled} are not, and {heldout} labelled held-out images measure progress.

**What to do next**
1. **3 · Tune**: press *Tune* (a few hundred steps; fewer to try it quickly). The prompt of the best step on the
   held-out images is kept, each class is answered by whichever model (the prompt or zero-shot) did better on them,
   and the prompt appears on the learning curve beside the zero-shot model's line. **5 · Evaluate** shows each
   class's route and both models' AP.
2. **2b · Review**: press *Pre-annotate all* with the latest prompt; the model suggests boxes on the
   {unlabelled} unlabelled images.
3. Review them: *Next to review* (R) opens the most uncertain image first; **A** accepts all suggestions, **Y** / **X**
   accept / reject the highlighted one; move or delete suggestions and draw missed boxes, then press **V**
   to accept it as edited.
4. Back in **3 · Tune**, tick *Continue from the latest prompt* and tune again: the learning curve shows how
   held-out mAP moves as confirmed boxes grow, against the dashed zero-shot line.
"""


def _unique_name(session, owner: str) -> str:
    taken = {p.name.casefold() for p in session.scalars(select(Project).where(Project.owner == owner))}
    name, number = EXAMPLE_NAME, 2
    while name.casefold() in taken:
        name, number = f"{EXAMPLE_NAME} {number}", number + 1
    return name


def example_classes() -> list[str]:
    from sdpt.synthetic.grounding import TASKS

    return TASKS[EXAMPLE_TASK].class_names


def example_scenes() -> Iterator[tuple[str, str, bool, object, list]]:
    """(file name, split, labelled in the project, PIL image, [(xyxy box, class)]) of every example image; the
    ground truth of the unlabelled ones too (for the loop benchmark's simulated reviewer)."""
    from sdpt.synthetic.grounding import TASKS, scene_stream

    stream = scene_stream(TASKS[EXAMPLE_TASK], EXAMPLE_SEED)
    plan = [("train", True)] * TRAIN_LABELLED + [("train", False)] * UNLABELLED + [("heldout", True)] * HELDOUT
    for number, (split, labelled) in enumerate(plan, start=1):
        image, objects = next(stream)
        yield f"shapes-{number:03d}.png", split, labelled, image, objects


def create_example_project(session, settings: Settings, owner: str = DEFAULT_OWNER) -> Project:
    """A new project, owned by `owner` (the signed-in user), holding the example's classes and images (the same
    images every time)."""
    names = example_classes()
    project = store.create_project(session, _unique_name(session, owner), owner=owner)
    project.description = DESCRIPTION.format(classes=len(names), train=TRAIN_LABELLED, unlabelled=UNLABELLED,
                                             heldout=HELDOUT)
    for name in names:
        store.add_class(session, project.id, name)
    max_bytes = settings.max_upload_mb * 2**20
    with tempfile.TemporaryDirectory(dir=settings.data_dir) as scratch:
        for file_name, split, labelled, image, objects in example_scenes():
            path = Path(scratch) / file_name
            image.save(path)
            stored = store_upload(path, settings.images_dir, max_bytes, original_name=path.name)
            record, _new = store.add_image(session, project.id, stored, split)
            if labelled:
                store.save_boxes(session, record.id, [{"label": name, "xmin": x0, "ymin": y0, "xmax": x1,
                                                       "ymax": y1} for (x0, y0, x1, y1), name in objects])
    logger.info("created example project %d (%s)", project.id, project.name)
    return project
