"""The bad-input corpus: every input here must be refused with a clear message and change nothing.

    python -m benchmarks.bad_inputs [--json benchmarks/results/bad_inputs.json]

The app is served on loopback with sign-in (alice owns a project with a class, an image and a box; bob has nothing
of hers), and each input is sent the way an outside client could send it: raw HTTP JSON to the API endpoints
(NaN, Infinity, ids beyond 64 bits, wrong types and shapes, another user's ids, anonymous calls), files through
gradio's upload route, and COCO and prompt zips through the import code the Import tab runs. For each input it
records whether it was refused, whether the message is clear (our own sentence, not gradio's generic "upstream
app has raised an exception", no traceback) and whether the database and the image store are byte-for-byte what
they were. A second, smaller set of unusual but valid inputs (names in other scripts) must be accepted.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

logger = logging.getLogger("benchmarks.bad_inputs")
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
NAN, INF = float("nan"), float("inf")
GENERIC = ("upstream gradio app has raised an exception", "traceback", "internal server error")


@dataclass
class Case:
    kind: str
    what: str
    endpoint: str
    data: object
    user: str | None = "alice"
    must_accept: bool = False


def corpus(project: int, image: int, upload: str, bob_upload: str) -> list[Case]:
    """The inputs; `upload` is a file alice uploaded, `bob_upload` one bob uploaded."""
    cases = []
    ids = {"-1": -1, "0": 0, "10**30": 10**30, "-10**30": -10**30, "text": "abc", "sql": "1; DROP TABLE projects",
           "1.5": 1.5, "true": True, "null": None, "list": [], "object": {}, "NaN": NAN, "Infinity": INF}
    by_id = {"list_images": lambda i: [i], "get_boxes": lambda i: [i], "add_class": lambda i: [i, "nut"],
             "save_boxes": lambda i: [i, [], -1], "job_status": lambda i: [i], "cancel_job": lambda i: [i],
             "tune": lambda i: [i, "sdpt", 5, False], "preannotate_all": lambda i: [i, -1, 0.3],
             "next_to_review": lambda i: [i], "suggestions": lambda i: [i], "review": lambda i: [i, [], [], -1],
             "learning_curve": lambda i: [i], "share_project": lambda i: [i, "bob", "viewer"]}
    for endpoint, make in by_id.items():
        for shown, value in ids.items():
            cases.append(Case("ids", f"{endpoint} id {shown}", endpoint, make(value)))
    own = {"list_images": [project], "get_boxes": [image], "add_class": [project, "nut"],
           "save_boxes": [image, [], -1], "tune": [project, "sdpt", 5, False],
           "preannotate_all": [project, -1, 0.3], "next_to_review": [project], "suggestions": [image],
           "review": [image, [], [], -1], "learning_curve": [project], "share_project": [project, "bob", "editor"]}
    for endpoint, data in own.items():
        cases.append(Case("another user's ids", f"bob: {endpoint} on alice's", endpoint, data, user="bob"))
        cases.append(Case("not signed in", f"anonymous: {endpoint}", endpoint, data, user=None))

    def box(**change):
        return {"label": "bolt", "xmin": 10, "ymin": 10, "xmax": 40, "ymax": 30, **change}
    bad_boxes = {"xmin NaN": [box(xmin=NAN)], "all NaN": [box(xmin=NAN, ymin=NAN, xmax=NAN, ymax=NAN)],
                 "ymax Infinity": [box(ymax=INF)], "xmax -Infinity": [box(xmax=-INF)], "xmin true": [box(xmin=True)],
                 "xmin text": [box(xmin="12")], "xmin null": [box(xmin=None)], "xmin > xmax": [box(xmin=50)],
                 "zero area": [box(xmax=10)], "far outside": [box(xmin=-5000, xmax=-4000)],
                 "1e308": [box(xmax=1e308)], "no ymax": [{"label": "bolt", "xmin": 1, "ymin": 1, "xmax": 5}],
                 "unknown class": [box(label="spaceship")], "empty class": [box(label="")],
                 "class of 10k chars": [box(label="x" * 10_000)], "class with control chars": [box(label="bo\x00lt")],
                 "boxes not a list": {"label": "bolt"}, "box not an object": ["bolt"],
                 "5001 boxes": [box()] * 5001}
    for shown, boxes in bad_boxes.items():
        cases.append(Case("boxes", shown, "save_boxes", [image, boxes, -1]))
    for shown, revision in {"text": "x", "NaN": NAN, "1.5": 1.5, "stale": 10**6}.items():
        cases.append(Case("boxes", f"revision {shown}", "save_boxes", [image, [box()], revision]))
    for shown, name in {"empty": "", "spaces": "   ", "dots": "...", "101 chars": "x" * 101, "NUL": "\x00",
                        "RTL override only": "\u202e", "emoji only": "\U0001F600", "null": None, "number": 123,
                        "list": ["a"], "taken": "Parts"}.items():
        cases.append(Case("names", f"project {shown}", "create_project", [name]))
        if shown != "taken":
            cases.append(Case("names", f"class {shown}", "add_class", [project, name]))
    cases.append(Case("names", "class taken", "add_class", [project, "BOLT"]))
    for shown, data in {"role admin": [project, "bob", "admin"], "empty user": [project, "", "viewer"],
                        "user with colon": [project, "a:b", "viewer"], "self": [project, "alice", "viewer"]}.items():
        cases.append(Case("names", f"share {shown}", "share_project", data))
    for shown, data in {"steps -5": [project, "sdpt", -5, False], "steps 0": [project, "sdpt", 0, False],
                        "steps 10**9": [project, "sdpt", 10**9, False], "steps NaN": [project, "sdpt", NAN, False],
                        "steps text": [project, "sdpt", "many", False], "steps 1.5": [project, "sdpt", 1.5, False],
                        "method unknown": [project, "nope", 5, False], "method empty": [project, "", 5, False],
                        "method null": [project, None, 5, False], "continue text": [project, "sdpt", 5, "yes"]}.items():
        cases.append(Case("numbers", f"tune {shown}", "tune", data))
    for shown, threshold in {"NaN": NAN, "2": 2, "-1": -1, "text": "high", "Infinity": INF}.items():
        cases.append(Case("numbers", f"preannotate threshold {shown}", "preannotate_all", [project, -1, threshold]))
    for shown, data in {"too few arguments": [image], "too many arguments": [image, [], -1, 1, 2],
                        "data not a list": {"image": image}, "data null": None}.items():
        cases.append(Case("payload shape", shown, "save_boxes", data))
    cases.append(Case("payload shape", "body not JSON", "save_boxes", b"{not json"))
    file = lambda path: {"path": path, "meta": {"_type": "gradio.FileData"}}  # noqa: E731
    for shown, value in {"bob's upload": file(bob_upload), "never uploaded": file("/etc/passwd"),
                         "traversal": file(upload + "/../../../../etc/passwd"), "no path": {"meta": {}},
                         "text instead of a file": "/etc/passwd"}.items():
        cases.append(Case("files", f"add_image: {shown}", "add_image", [project, value, "train"]))
    cases.append(Case("files", "add_image: split 'test'", "add_image", [project, file(upload), "test"]))
    for shown, name in {"Chinese": "细胞 计数", "Arabic": "خلية دم", "combining accents": "Ce\u0301llules",
                        "emoji and letters": "bolt \U0001F529", "Devanagari": "कोशिका"}.items():
        cases.append(Case("valid", f"class in {shown}", "add_class", [project, name], must_accept=True))
    return cases


def uploads() -> dict[str, bytes]:
    """Files that are not usable images, each sent through gradio's upload route and then /add_image."""
    good = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(good, format="PNG")
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, format="PNG")  # 81 Mpx in a few kB
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello")
    return {"corrupt.png": good.getvalue()[:60], "text.png": b"just some text, not pixels", "empty.png": b"",
            "bomb.png": bomb.getvalue(), "archive.png": archive.getvalue()}


def coco_zips(root: Path) -> dict[str, Path]:
    """COCO zips the Import tab must refuse."""
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(picture, format="PNG")

    def coco(bbox, category=1, file_name="a.png"):
        return {"images": [{"id": 1, "file_name": file_name, "width": 64, "height": 48}],
                "categories": [{"id": 1, "name": "bolt"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": category, "bbox": bbox}]}
    variants = {"bbox NaN": coco([NAN, 1, 2, 3]), "bbox Infinity": coco([1, 1, INF, 3]),
                "bbox negative width": coco([10, 1, -5, 3]), "bbox outside the image": coco([500, 500, 10, 10]),
                "bbox of three numbers": coco([1, 2, 3]), "bbox text": coco(["1", 2, 3, 4]),
                "unknown category": coco([1, 1, 5, 5], category=7), "missing image file": coco([1, 1, 5, 5],
                                                                                               file_name="b.png"),
                "201 categories": {**coco([1, 1, 5, 5]), "categories": [{"id": k, "name": f"kind {k}"}
                                                                         for k in range(1, 202)]}}
    zips = {}
    for shown, content in variants.items():
        path = root / f"coco {len(zips)}.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("annotations.json", json.dumps(content))
            z.writestr("a.png", picture.getvalue())
        zips[shown] = path
    for shown, writer in {"annotations not JSON": lambda z: z.writestr("annotations.json", "{oops"),
                          "no annotations.json": lambda z: z.writestr("a.png", picture.getvalue())}.items():
        path = root / f"coco {len(zips)}.zip"
        with zipfile.ZipFile(path, "w") as z:
            writer(z)
        zips[shown] = path
    not_zip = root / "not a zip.zip"
    not_zip.write_bytes(b"PK but not really")
    zips["not a zip"] = not_zip
    return zips


def prompt_zips(root: Path) -> dict[str, Path]:
    """Prompt files the Import tab must refuse (weights only through safetensors, never pickle)."""
    zips = {}
    for shown, files in {"pickle weights": {"prompt_config.json": json.dumps({"method": "sdpt", "format": 3}),
                                            "prompt.bin": b"\x80\x04K\x01."},
                         "config not JSON": {"prompt_config.json": "{", "prompt.safetensors": b"x"},
                         "empty zip": {}}.items():
        path = root / f"prompt {len(zips)}.zip"
        with zipfile.ZipFile(path, "w") as z:
            for name, content in files.items():
                z.writestr(name, content)
        zips[shown] = path
    return zips


def message_of(response: httpx.Response) -> tuple[bool, str]:
    """(refused, message) of an API answer."""
    try:
        body = response.json()
    except ValueError:
        return response.status_code != 200, response.text
    if isinstance(body, dict) and ("error" in body or "detail" in body):
        return True, str(body.get("error") or body.get("detail") or "")
    return response.status_code != 200, json.dumps(body)[:300]


def is_clear(message: str) -> bool:
    """Our own sentence: not empty, not gradio's generic error, no traceback, no raw validation dump."""
    text = (message or "").strip()
    return len(text) >= 15 and not any(generic in text.lower() for generic in GENERIC) and \
        not text.startswith("[{'type'")


def snapshot(context) -> tuple:
    """Every row the corpus could touch, and the image store's files."""
    from sqlalchemy import text

    with context.database.engine.connect() as connection:
        tables = tuple(tuple(map(tuple, connection.execute(text(f"SELECT * FROM {table} ORDER BY id"))))
                       for table in ("projects", "project_shares", "classes", "images", "boxes", "tuning_jobs",
                                     "prompts", "suggestions"))
    files = tuple(sorted(str(p) for p in context.settings.images_dir.rglob("*") if p.is_file()))
    return tables, files


def run(json_path: Path | None) -> dict:
    from app import exchange, store
    from app.auth import parse_pairs
    from app.image_files import store_upload
    from app.models_service import ModelService
    from app.server import build_app, launch_options
    from app.settings import Settings
    from sdpt.detector import load_detector
    from tests.app.conftest import free_port

    root = Path(tempfile.mkdtemp(prefix="sdpt-bad-inputs-"))
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'data' / 'app.sqlite'}",
                        model="tiny-random", port=free_port(), worker=False)
    settings.users = parse_pairs([f"{n}:{p}" for n, p in USERS.items()], "benchmark")
    settings.ensure_dirs()
    models = ModelService(detector=load_detector("tiny-random", device="cpu"), note="Model: tiny-random.")
    demo, context, _worker = build_app(settings, models=models)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings, context))
    url = f"http://127.0.0.1:{settings.port}/"
    picture = root / "part.png"
    Image.new("RGB", (120, 90), (90, 90, 90)).save(picture)
    with context.database.session() as session:
        project = store.create_project(session, "Parts", owner="alice").id
        store.add_class(session, project, "bolt")
        stored = store_upload(str(picture), settings.images_dir, 2**24, original_name="part.png")
        image = store.add_image(session, project, stored, "train")[0].id
        store.save_boxes(session, image, [{"label": "bolt", "xmin": 20, "ymin": 10, "xmax": 50, "ymax": 40}])
    clients = {None: httpx.Client(base_url=url, timeout=60)}
    for name, password in USERS.items():
        clients[name] = httpx.Client(base_url=url, timeout=60)
        assert clients[name].post("/login", data={"username": name, "password": password}).status_code == 200

    def upload(user: str, name: str, content: bytes) -> str:
        answer = clients[user].post("/gradio_api/upload", files={"files": (name, content, "image/png")})
        return answer.json()[0]
    alice_upload = upload("alice", "fine.png", picture.read_bytes())
    theirs = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(theirs, format="PNG")
    bob_upload = upload("bob", "bobs.png", theirs.getvalue())  # other content: bob's alone
    cases = corpus(project, image, alice_upload, bob_upload)
    for name, content in uploads().items():
        path = upload("alice", name, content)
        cases.append(Case("files", f"add_image: {name}", "add_image",
                          [project, {"path": path, "meta": {"_type": "gradio.FileData"}}, "train"]))

    rows = []
    for case in cases:
        before = snapshot(context)
        body = case.data if isinstance(case.data, bytes) else json.dumps({"data": case.data})
        response = clients[case.user].post(f"/gradio_api/run/{case.endpoint}", content=body,
                                           headers={"content-type": "application/json"})
        refused, message = message_of(response)
        rows.append(_row(case, refused, message, before == snapshot(context) or case.must_accept))
    for kind, zips, load in (("COCO import", coco_zips(root), lambda p: exchange.import_zip(
            context.database, settings, project, p)),
            ("prompt import", prompt_zips(root), lambda p: exchange.import_prompt_zip(
                context.database, settings, project, p, models.detector))):
        for shown, path in zips.items():
            before = snapshot(context)
            try:
                load(path)
                refused, message = False, "accepted"
            except Exception as error:  # noqa: BLE001 - the message is what is measured
                refused, message = True, str(error) if isinstance(error, (store.StoreError, ValueError)) else \
                    f"traceback: {type(error).__name__}: {error}"
            rows.append(_row(Case(kind, shown, kind, None), refused, message, before == snapshot(context)))
    for client in clients.values():
        client.close()
    demo.close()
    context.database.engine.dispose()
    result = summarise(rows)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return result


def _row(case: Case, refused: bool, message: str, intact: bool) -> dict:
    clear = (not refused) if case.must_accept else (refused and is_clear(message))
    return {"kind": case.kind, "what": case.what, "refused": refused, "clear": clear, "intact": intact,
            "message": message[:300]}


def summarise(rows: list[dict]) -> dict:
    kinds = {}
    for row in rows:
        entry = kinds.setdefault(row["kind"], {"total": 0, "clear": 0, "intact": 0})
        entry["total"] += 1
        entry["clear"] += row["clear"]
        entry["intact"] += row["intact"]
    totals = {key: sum(k[key] for k in kinds.values()) for key in ("total", "clear", "intact")}
    return {"kinds": kinds, "totals": totals, "failures": [r for r in rows if not (r["clear"] and r["intact"])],
            "rows": rows}


def table(result: dict) -> str:
    lines = ["| inputs | clear / total | intact / total |", "|---|---|---|"]
    for kind, entry in {**result["kinds"], "all": result["totals"]}.items():
        lines.append(f"| {kind} | {entry['clear']} / {entry['total']} | {entry['intact']} / {entry['total']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = run(args.json)
    print(table(result))  # noqa: T201 - the benchmark's output
    for failure in result["failures"]:
        print(f"- {failure['kind']}: {failure['what']}: refused={failure['refused']} intact={failure['intact']} "
              f"message={failure['message']!r}")  # noqa: T201
    return result


if __name__ == "__main__":
    main()
