"""Two signed-in users in two browser contexts (Playwright driving Debian's Chromium): bob never sees alice's
project or its image, not even by the file URL her page got (image or export); shared as a viewer he opens it but
cannot save; a context that has not signed in sees only the sign-in form; after 20 failed sign-ins the right
password is refused too and the page says how long to wait. Screenshots go to test-artifacts/."""
import re

import httpx

from app import store
from tests.app.conftest import TEAM
from tests.app.browser_helpers import pytestmark, shot, wait_for_status  # noqa: F401 (skip mark)


def sign_in(browser, url, name):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.goto(url)
    page.locator("input").nth(0).fill(name)
    page.locator("input[type=password]").fill(TEAM[name])
    page.get_by_role("button", name="Login").click()
    page.get_by_text(f"Signed in as {name}").wait_for()
    return context, page


def test_two_users_in_two_browser_contexts(team_app, browser, tmp_path):
    from PIL import Image

    url, context, _worker = team_app
    picture = tmp_path / "private.png"
    Image.new("RGB", (200, 150), (30, 30, 200)).save(picture)

    alice_context, alice = sign_in(browser, url, "alice")
    alice.locator("#new-project textarea, #new-project input").first.fill("Alice private")
    alice.locator("#create-project").click()
    wait_for_status(alice, "created project 'Alice private'")
    alice.locator("#new-classes textarea, #new-classes input").first.fill("blue thing")
    alice.locator("#add-classes").click()
    wait_for_status(alice, "added 'blue thing'")
    alice.get_by_role("tab", name="2 · Label images").click()
    alice.locator("#uploads input[type=file]").set_input_files(str(picture))
    alice.locator("#add-images").click()
    wait_for_status(alice, "added 1 image")
    alice.locator("#annotator canvas").first.wait_for()
    shot(alice, "access-01-alice")
    with context.database.session() as session:
        (project,) = store.list_projects(session)
        (record,) = store.list_images(session, project.id)
        stored = store.image_file(context.settings.images_dir, record)
    # the page shows a served copy, never the store's own path
    assert str(stored) not in alice.content()
    alice.get_by_role("tab", name="6 · Import / export").click()
    alice.locator("#export-project").click()
    wait_for_status(alice, "exported the project")
    alice_urls = set(re.findall(r"gradio_api/file=[^\"'\s)]+", alice.content()))
    assert any(u.endswith(".png") for u in alice_urls) and any(u.endswith(".zip") for u in alice_urls), alice_urls
    for found in alice_urls:
        assert alice_context.request.get(url + found).status == 200, found

    bob_context, bob = sign_in(browser, url, "bob")
    bob.wait_for_timeout(1000)
    assert "Alice private" not in bob.content()
    bob.locator("#project").click()
    assert bob.get_by_role("option", name="Alice private").count() == 0
    shot(bob, "access-02-bob-sees-nothing")
    for guess in (f"gradio_api/file={stored}", f"file={stored}"):
        assert bob_context.request.get(url + guess).status != 200, guess
    for copied in alice_urls:  # URLs copied from alice's page (her image, her whole export)
        answer = bob_context.request.get(url + copied)
        assert answer.status == 404 and "made for another user" in answer.text(), copied

    # shared as a viewer: bob opens it, sees the image, and his save is refused with what to do
    with context.database.session() as session:
        from app import access
        access.share(session, access.User("alice"), project.id, "bob", "viewer")
    bob.reload()
    bob.get_by_text("Signed in as bob").wait_for()
    # his only project now, so the page opens it
    bob.wait_for_function("() => (document.querySelector('#project input')?.value || '')"
                          ".includes('Alice private (viewer, owned by alice)')")
    bob.get_by_role("tab", name="2 · Label images").click()
    bob.locator("#annotator canvas").first.wait_for()
    bob.locator("#save-boxes").click()
    wait_for_status(bob, "you can view 'Alice private' but not change it")
    shot(bob, "access-03-bob-viewer")

    anonymous = browser.new_context().new_page()
    anonymous.goto(url)
    anonymous.locator("input[type=password]").wait_for()
    assert "Alice private" not in anonymous.content() and "Teach a detector" not in anonymous.content()
    alice_context.close()
    bob_context.close()


def test_the_21st_sign_in_within_a_minute_is_refused_and_the_page_says_how_long_to_wait(team_app, browser):
    url, _context, _worker = team_app
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(20):
            assert client.post("/login", data={"username": "carol", "password": "wrong"}).status_code == 400
    page = browser.new_context().new_page()
    page.goto(url)
    page.locator("input").nth(0).fill("carol")
    page.locator("input[type=password]").fill(TEAM["carol"])  # the right password, still refused
    page.get_by_role("button", name="Login").click()
    note = page.locator("#sign-in-wait")
    note.wait_for()
    assert re.search(r"try again in \d+ s", note.inner_text()), note.inner_text()
    shot(page, "access-04-sign-in-paused")
    assert page.get_by_text("Signed in as carol").count() == 0
