"""Two real users (and a third) against the served app with sign-in, through authenticated gradio_client clients
and plain HTTP: nobody reaches a project that is not theirs or shared with them, by id or by URL; a viewer reads
but does not write; a client that has not signed in gets nothing. Plus the UI handlers with the same users."""
import time

import httpx
import pytest
from PIL import Image

from app import access, store
from app.example import EXAMPLE_NAME
from tests.app.conftest import TEAM

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (conftest.py)

REFUSED = "does not exist or is not shared with you"


def client_for(url, name):
    from gradio_client import Client

    return Client(url, auth=(name, TEAM[name]), verbose=False)


def refused(client, *args, api_name, match=REFUSED):
    with pytest.raises(Exception, match=match):
        client.predict(*args, api_name=api_name)


def wait_finished(client, job_id, seconds=180):
    deadline, status = time.time() + seconds, {}
    while time.time() < deadline:
        status = client.predict(job_id, api_name="/job_status")
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.5)
    raise AssertionError(status)


def signed_in_http(url, name):
    http = httpx.Client(base_url=url, timeout=30)
    response = http.post("login", data={"username": name, "password": TEAM[name]})
    assert response.status_code == 200, response.text
    return http


def test_two_users_and_a_viewer_through_the_api(team_app, tmp_path):
    from gradio_client import handle_file

    url, context, _worker = team_app
    alice, bob, carol = client_for(url, "alice"), client_for(url, "bob"), client_for(url, "carol")

    created = alice.predict("Alice cells", api_name="/create_project")
    project = created["project_id"]
    assert created["id"] == project  # the old key stays for one release
    assert alice.predict(project, "cell", api_name="/add_class")["class_id"]
    picture = tmp_path / "cell.png"
    Image.new("RGB", (120, 90), (90, 20, 20)).save(picture)
    image = alice.predict(project, handle_file(str(picture)), "train", api_name="/add_image")["image_id"]
    box = [{"label": "cell", "xmin": 20, "ymin": 10, "xmax": 50, "ymax": 40}]
    assert alice.predict(image, box, 0, api_name="/save_boxes") == {"boxes": 1, "revision": 1}
    job = alice.predict(project, "sdpt", 3, api_name="/tune")["job_id"]
    # the labelling loop: an unlabelled image with zero-shot suggestions on it
    second = tmp_path / "second.png"
    Image.new("RGB", (120, 90), (20, 20, 90)).save(second)
    unlabelled = alice.predict(project, handle_file(str(second)), "train", api_name="/add_image")["image_id"]
    preannotated = alice.predict(project, 0, 0.05, api_name="/preannotate_all")["job_id"]
    assert wait_finished(alice, preannotated)["status"] == "done"
    shown = alice.predict(unlabelled, api_name="/suggestions")
    ids = [b["suggestion_id"] for b in shown["boxes"]]
    curve = alice.predict(project, api_name="/learning_curve")
    queue = alice.predict(project, api_name="/next_to_review")

    # bob: nothing of alice's, by listing or by id; the answers are the same as for ids that do not exist
    assert bob.predict(api_name="/list_projects") == {"projects": []}
    refused(bob, project, api_name="/list_images")
    refused(bob, image, api_name="/get_boxes")
    refused(bob, image, [], -1, api_name="/save_boxes")
    refused(bob, project, "sdpt", 3, api_name="/tune")
    refused(bob, job, api_name="/job_status")
    refused(bob, job, api_name="/cancel_job")
    refused(bob, project, "bolt", api_name="/add_class")
    refused(bob, project, handle_file(str(picture)), "train", api_name="/add_image")
    refused(bob, project, "bob", "editor", api_name="/share_project", match="does not exist or is not shared")
    refused(bob, image + 1000, api_name="/get_boxes")  # a guessed id that does not exist: the same answer
    refused(bob, project, 0, 0.3, api_name="/preannotate_all")
    refused(bob, project, api_name="/next_to_review")
    refused(bob, unlabelled, api_name="/suggestions")
    refused(bob, unlabelled, ids[:1], ids[1:], shown["revision"], api_name="/review")
    refused(bob, project, api_name="/learning_curve")
    refused(bob, preannotated, api_name="/job_status")
    refused(bob, preannotated, api_name="/cancel_job")
    example = bob.predict(api_name="/create_example_project")  # bob's own example project, owned by bob
    assert bob.predict(api_name="/list_projects")["projects"] == [
        {"project_id": example["project_id"], "name": EXAMPLE_NAME, "owner": "bob", "role": "owner"}]
    assert example["project_id"] not in [p["project_id"] for p in alice.predict(api_name="/list_projects")["projects"]]
    refused(alice, example["project_id"], api_name="/next_to_review")
    if ids:  # alice's suggestion ids cannot be reviewed through bob's own images either
        bob_image = bob.predict(example["project_id"], api_name="/next_to_review")["image_id"]
        refused(bob, bob_image, ids, [], -1, api_name="/review", match="is not on")
    assert alice.predict(image, api_name="/get_boxes")["boxes"][0]["label"] == "cell"  # nothing changed

    # carol as a viewer: reads, but every write is refused with what to do
    alice.predict(project, "carol", "viewer", api_name="/share_project")
    (listed,) = carol.predict(api_name="/list_projects")["projects"]
    assert listed == {"project_id": project, "name": "Alice cells", "owner": "alice", "role": "viewer"}
    assert carol.predict(image, api_name="/get_boxes")["revision"] == 1
    assert carol.predict(project, api_name="/list_images")["images"][0]["boxes"] == 1
    assert carol.predict(job, api_name="/job_status")["steps"] == 3
    viewer_only = "can view 'Alice cells' but not change it; ask its owner \\(alice\\)"
    refused(carol, image, [], -1, api_name="/save_boxes", match=viewer_only)
    refused(carol, project, "sdpt", 3, api_name="/tune", match=viewer_only)
    refused(carol, job, api_name="/cancel_job", match=viewer_only)
    refused(carol, project, "dot", api_name="/add_class", match=viewer_only)
    refused(carol, project, "bob", "viewer", api_name="/share_project", match="only the owner \\(alice\\)")
    assert carol.predict(unlabelled, api_name="/suggestions") == shown  # the loop: reads...
    assert carol.predict(project, api_name="/learning_curve") == curve
    assert carol.predict(project, api_name="/next_to_review") == queue
    # ...but does not write
    refused(carol, unlabelled, ids[:1], ids[1:], shown["revision"], api_name="/review", match=viewer_only)
    refused(carol, project, 0, 0.3, api_name="/preannotate_all", match=viewer_only)
    assert alice.predict(unlabelled, api_name="/suggestions") == shown  # nothing of the loop's changed

    # bob as an editor may write; taking the share away takes the access away again
    alice.predict(project, "bob", "editor", api_name="/share_project")
    assert bob.predict(image, box * 2, 1, api_name="/save_boxes") == {"boxes": 2, "revision": 2}
    alice.predict(project, "bob", "remove", api_name="/share_project")
    refused(bob, image, api_name="/get_boxes")
    assert wait_finished(alice, job)["status"] == "done"

    # the stored file cannot be fetched by URL: the image store is not served, whoever asks
    with context.database.session() as session:
        stored = store.image_file(context.settings.images_dir, store.get_image(session, image))
    for name in ("bob", "alice"):
        http = signed_in_http(url, name)
        assert http.get("config").status_code == 200  # signed in...
        assert http.get(f"gradio_api/file={stored}").status_code in (403, 404)  # ...but the store is not served
        http.close()

    # a client that has not signed in gets nothing: no config, no API, no files
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        assert anonymous.get("config").status_code == 401
        assert anonymous.post("gradio_api/call/list_projects", json={"data": []}).status_code == 401
        assert anonymous.get(f"gradio_api/file={stored}").status_code in (401, 403)
    with pytest.raises(Exception):
        from gradio_client import Client
        Client(url, verbose=False)
    with pytest.raises(Exception):
        from gradio_client import Client
        Client(url, auth=("bob", "wrong password"), verbose=False)


def test_ui_handlers_refuse_another_users_project(team_app, tmp_path):
    """The handlers behind the page (exports, prompt downloads and uploads, jobs, compare) as bob on alice's
    project, after alice tuned a prompt there."""
    from gradio_client import handle_file

    from app.ui import compare, evaluation, exchange_tab, labelling, learning_curve, projects, review, review_tab, \
        tuning

    url, context, _worker = team_app
    alice = client_for(url, "alice")
    project = alice.predict("Shared nothing", api_name="/create_project")["project_id"]
    alice.predict(project, "cell", api_name="/add_class")
    picture = tmp_path / "cell.png"
    Image.new("RGB", (100, 80), (20, 90, 20)).save(picture)
    image = alice.predict(project, handle_file(str(picture)), "train", api_name="/add_image")["image_id"]
    alice.predict(image, [{"label": "cell", "xmin": 5, "ymin": 5, "xmax": 40, "ymax": 40}], 0, api_name="/save_boxes")
    job = alice.predict(project, "sdpt", 2, api_name="/tune")["job_id"]
    assert wait_finished(alice, job)["status"] == "done"
    with context.database.session() as session:
        prompt = store.latest_prompt(session, project).id
        class_id = store.list_classes(session, project)[0].id

    as_alice = context.__class__(context.database, context.settings, context.models, access.User("alice"))
    as_bob = context.__class__(context.database, context.settings, context.models, access.User("bob"))
    nobody = context.__class__(context.database, context.settings, context.models, None)
    prompt_zip, message = exchange_tab.export_prompt(as_alice, prompt)
    assert prompt_zip, message

    def denied(message):
        assert REFUSED in message, message

    assert projects.project_choices(as_bob) == [] and projects.project_choices(nobody) == []
    assert projects.project_choices(as_alice) == [("Shared nothing", project)]
    denied(projects.rename_project(as_bob, project, "mine now"))
    denied(projects.delete_project(as_bob, project, True))
    denied(projects.add_classes(as_bob, project, "dot", None))
    denied(projects.rename_class(as_bob, class_id, "dot"))
    denied(projects.delete_class(as_bob, class_id, True))
    denied(projects.share_project(as_bob, project, "bob", "editor"))
    denied(labelling.editor_value(as_bob, image)[3])
    with pytest.raises(access.AccessDenied):
        labelling.image_choices(as_bob, project)
    denied(labelling.save_boxes(as_bob, image, 1, {"boxes": []})[0])
    denied(labelling.set_split(as_bob, image, "heldout"))
    denied(labelling.delete_image(as_bob, image))
    denied(labelling.upload_images(as_bob, project, [str(picture)], "train")[1])
    denied(labelling.preannotate(as_bob, project, image, "zero-shot", 0.3, None)[1])
    denied(tuning.start_tuning(as_bob, project, "sdpt", 2)[1])
    denied(tuning.job_view(as_bob, job)[0])
    denied(tuning.cancel_job(as_bob, job))
    denied(tuning.retry_job(as_bob, job)[1])
    denied(exchange_tab.export_project(as_bob, project)[1])
    denied(exchange_tab.export_prompt(as_bob, prompt)[1])
    denied(exchange_tab.import_prompt(as_bob, project, prompt_zip))
    denied(exchange_tab.import_project(as_bob, project, prompt_zip))
    denied(compare.compare(as_bob, project, prompt, image, None, 0.3)[3])
    denied(compare.explain(as_bob, project, prompt, image, None, "cell")[2])
    with pytest.raises(access.AccessDenied):
        evaluation.evaluate_project(as_bob, project, prompt)
    # the labelling loop's handlers: the Review tab, the description, the learning curve
    denied(review.counts_markdown(as_bob, project))
    denied(review.start_preannotate(as_bob, project, "zero-shot", 0.3)[1])
    denied(review.job_markdown(as_bob, job))
    denied(review.cancel(as_bob, job))
    denied(review.next_image(as_bob, project, None)[1])
    denied(review.editor_value(as_bob, image)[2])
    denied(review.act(as_bob, image, -1, "all"))
    denied(review.act(as_bob, image, -1, "reject"))
    denied(review.accept_edited(as_bob, image, -1, {"boxes": []}))
    with context.database.session() as session:  # a learning-curve point, as a tune with held-out images records
        from app import suggestions

        suggestions.record_heldout(session, prompt, 1, {"routed": {"map": 0.25, "map50": 0.5, "images": 1},
                                                     "zero-shot": {"map": 0.2, "map50": 0.4}})
    assert learning_curve.points(as_bob, project) == [] and len(learning_curve.points(as_alice, project)) == 1
    assert review_tab.description_markdown(as_bob, project) == ""
    value, _revision, _info = review.editor_value(as_alice, image)  # the owner's editor: a hashed cache copy
    assert value["image"] and str(context.settings.images_dir) not in value["image"]
    # bob's own project cannot borrow alice's prompt or image by id either
    with context.database.session() as session:
        own = store.create_project(session, "Bob's", owner="bob").id
        store.add_class(session, own, "cell")
    denied(compare.compare(as_bob, own, prompt, None, str(picture), 0.3)[3])
    denied(compare.compare(as_bob, own, None, image, None, 0.3)[3])
    denied(compare.explain(as_bob, own, prompt, None, str(picture), "cell")[2])
    assert "sign in first" in projects.create_project(nobody, "x")[1]
    with context.database.session() as session:  # nothing of alice's changed
        assert store.get_project(session, project).name == "Shared nothing"
        assert len(store.get_image(session, image).boxes) == 1
        assert len(store.list_jobs(session, project)) == 1


def test_suggestion_ids_are_checked_through_their_image(database, settings, tmp_path):
    """Suggestions have no project_id: `require(..., suggestion_id=...)` finds the project through the image, so a
    suggestion is as private as its image, and cannot be paired with another project's ids."""
    from app import suggestions
    from app.image_files import store_upload

    picture = tmp_path / "p.png"
    Image.new("RGB", (60, 40), (1, 2, 3)).save(picture)
    with database.session() as session:
        mine = store.create_project(session, "Alice's", owner="alice").id
        store.add_class(session, mine, "cell")
        image = store.add_image(session, mine, store_upload(picture, settings.images_dir, 2**20), "train")[0].id
        assert suggestions.write_suggestions(session, image, [{"label": "cell", "xmin": 1, "ymin": 1, "xmax": 20,
                                                               "ymax": 20, "score": 0.5}], "zero-shot", None, None)
        (suggestion,) = suggestions.list_suggestions(session, image)
        other = store.create_project(session, "Bob's", owner="bob").id
    alice, bob = access.User("alice"), access.User("bob")
    with database.session() as session:
        assert access.require(session, alice, "write", suggestion_id=suggestion.id, image_id=image).id == mine
        with pytest.raises(access.AccessDenied, match=f"suggestion {suggestion.id} does not exist or is not shared"):
            access.require(session, bob, "read", suggestion_id=suggestion.id)
        with pytest.raises(access.AccessDenied, match="does not exist or is not shared"):
            access.require(session, bob, "write", project_id=other, suggestion_id=suggestion.id)
        with pytest.raises(access.AccessDenied, match="does not exist or is not shared"):
            access.require(session, alice, "read", suggestion_id=suggestion.id + 1000)
