"""All database reads and writes of the app: plain functions taking a session. Errors a user can fix raise
`StoreError` with a message that says what to do; nothing is written when one is raised.

One module per concern (`projects`: projects and classes; `images`: images and boxes; `jobs`: tuning jobs and the
prompts they make; `common`: the error, names, ids and limits); callers use them through this package, `store.X`.
"""
from app.models import ImageRecord, PromptRecord, TuningJob  # noqa: F401 (callers name the rows as store.X)
from app.store.common import (
    ID_RANGE, MAX_CLASSES, MAX_NAME, PALETTE, SPLITS, StoreError, clean_name, id_in_range)
from app.store.projects import (
    add_class, create_project, delete_class, delete_project, get_project, list_classes, list_projects,
    project_key, rename_class, rename_project, set_class_colour)
from app.store.images import (
    add_image, box_coordinates, boxes_of, check_split, coordinate, delete_image, get_image, image_file,
    list_images, save_boxes, set_split)
from app.store.jobs import (
    add_prompt, claim_job, current_job, enqueue_job, finish_job, get_job, heartbeat, latest_prompt, list_jobs,
    mark_stale_jobs_interrupted, record_progress, request_cancel, retry_job)
