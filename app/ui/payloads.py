"""The shapes API payloads must have, and checks that refuse anything else with that shape in the message."""
from __future__ import annotations

from app.store import StoreError

BOX_EXAMPLE = '[{"label": "bolt", "xmin": 20, "ymin": 10, "xmax": 50, "ymax": 40}]'
MAX_BOXES = 5000

# endpoint -> its arguments, as a caller must send them (quoted in every refusal)
SHAPES = {
    "/list_projects": "no arguments",
    "/create_project": "(name: text)",
    "/share_project": '(project_id: whole number, user_name: text, role: "viewer", "editor" or "remove")',
    "/add_class": "(project_id: whole number, name: text)",
    "/add_image": '(project_id: whole number, file: handle_file(path), split: "train" or "heldout")',
    "/list_images": "(project_id: whole number)",
    "/get_boxes": "(image_id: whole number)",
    "/save_boxes": f"(image_id: whole number, boxes: a list of boxes such as {BOX_EXAMPLE}, revision: whole "
                   "number from /get_boxes or -1 to skip the two-tab check)",
    "/tune": '(project_id: whole number, method: e.g. "sdpt", steps: whole number 1-100000, '
             'continue_from_latest: true or false)',
    "/job_status": "(job_id: whole number)",
    "/cancel_job": "(job_id: whole number)",
    "/create_example_project": "no arguments",
    "/preannotate_all": "(project_id: whole number, prompt_id: whole number (-1 = latest, 0 = zero-shot), "
                        "threshold: number 0-1)",
    "/next_to_review": "(project_id: whole number)",
    "/suggestions": "(image_id: whole number)",
    "/review": "(image_id: whole number, accept: list of suggestion ids, reject: list of suggestion ids, "
               "revision: whole number from /suggestions or -1)",
    "/learning_curve": "(project_id: whole number)",
}


class PayloadError(StoreError):
    """An argument of the wrong type or shape."""


def _refuse(endpoint: str, name: str, wanted: str, value) -> PayloadError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return PayloadError(f"{endpoint}: {name} must be {wanted}, not {type(value).__name__} {shown}; "
                        f"{endpoint} takes {SHAPES[endpoint]}")


def whole(value, endpoint: str, name: str) -> int:
    """An integer id or count; whole floats (3.0) and digit strings ("3") are accepted, the rest refused."""
    if isinstance(value, bool):
        raise _refuse(endpoint, name, "a whole number", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise _refuse(endpoint, name, "a whole number", value)


def text(value, endpoint: str, name: str) -> str:
    if not isinstance(value, str):
        raise _refuse(endpoint, name, "text", value)
    return value


def file(value, endpoint: str) -> dict:
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        raise _refuse(endpoint, "file", "an uploaded file (gradio_client.handle_file(path))", value)
    return value


def boxes(value) -> list[dict]:
    """A list of {label, xmin, ymin, xmax, ymax} dicts (the store checks the numbers and labels)."""
    endpoint = "/save_boxes"
    if not isinstance(value, list):
        raise _refuse(endpoint, "boxes", "a list of boxes", value)
    if len(value) > MAX_BOXES:
        raise PayloadError(f"{endpoint}: {len(value)} boxes on one image is too many; the limit is {MAX_BOXES}")
    for number, box in enumerate(value, start=1):
        if not isinstance(box, dict):
            raise _refuse(endpoint, f"box {number}", "an object with label, xmin, ymin, xmax, ymax", box)
        missing = [k for k in ("label", "xmin", "ymin", "xmax", "ymax") if k not in box]
        if missing:
            raise PayloadError(f"{endpoint}: box {number} lacks {', '.join(missing)}; {endpoint} takes "
                               f"{SHAPES[endpoint]}")
    return value
