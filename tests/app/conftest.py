"""App fixtures: settings in a temporary data directory with a real SQLite file, and a served app.

Test modules that set `BOTH_DATABASES = True` run every test that uses a database on SQLite and on PostgreSQL: a
fresh database per test on the server SDPT_TEST_POSTGRES_URL names (tests/postgres_server.sh starts one; .ci/run
does). Without that variable the PostgreSQL runs are skipped, except under CI, where they fail.
"""
import os
import socket
import uuid
from contextlib import contextmanager

import pytest

from app.settings import Settings
from tests.app import browser_helpers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_settings(root, worker: bool = False, database_url: str | None = None) -> Settings:
    settings = Settings(data_dir=root, database_url=database_url or f"sqlite:///{root / 'app.sqlite'}",
                        model="tiny-random", port=free_port(), worker=worker)
    settings.ensure_dirs()
    return settings


@contextmanager
def serve(settings: Settings, models):
    """(url, context, worker) of the whole app with an in-process worker on `settings.port`, registered for the
    browser helpers' failure reports while it runs, and shut down afterwards."""
    from app.server import build_app, launch_options

    demo, context, worker = build_app(settings, models=models)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings, context))
    browser_helpers.SERVED.append(demo)
    try:
        yield f"http://127.0.0.1:{settings.port}/", context, worker
    finally:
        browser_helpers.SERVED.remove(demo)
        worker.stop()
        demo.close()
        context.database.engine.dispose()


def pytest_generate_tests(metafunc):
    if getattr(metafunc.module, "BOTH_DATABASES", False) and "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The admin URL of the test PostgreSQL server; skips (fails under CI) when there is none."""
    url = os.environ.get("SDPT_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: start tests/postgres_server.sh and set SDPT_TEST_POSTGRES_URL")
        pytest.skip("no PostgreSQL server (eval \"$(tests/postgres_server.sh start)\" to test it)")
    return url


@pytest.fixture
def database_url(request, tmp_path):
    """None (SQLite in the data directory) or the URL of a fresh PostgreSQL database, dropped afterwards."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = request.getfixturevalue("postgres_server")
    name = f"sdpt_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(tmp_path, database_url):
    return make_settings(tmp_path / "data", database_url=database_url)


@pytest.fixture
def database(settings):
    from app.db import Database

    return Database(settings.database_url)


@pytest.fixture(scope="session")
def ui_models():
    """The UI's model service on the tiny random detector (shared: loading it once keeps tests fast)."""
    from app.models_service import ModelService
    from sdpt.detector import load_detector

    return ModelService(detector=load_detector("tiny-random", device="cpu"), note="Model: tiny-random (tests).")


@pytest.fixture
def served_app(tmp_path, ui_models, database_url):
    """(url, context, worker): the whole app with an in-process worker, on a free loopback port."""
    with serve(make_settings(tmp_path / "data", worker=True, database_url=database_url), ui_models) as served:
        yield served


@pytest.fixture(scope="session")
def glip_models():
    """The UI's model service on the tiny random GLIP: the second host."""
    from app.models_service import ModelService
    from sdpt.detector import GLIP_TINY_RANDOM, load_detector

    return ModelService(detector=load_detector(GLIP_TINY_RANDOM, device="cpu"), note="Model: glip-tiny-random (tests).")


@pytest.fixture
def glip_app(tmp_path, glip_models, database_url):
    """(url, context, worker): the whole app serving GLIP, with an in-process worker."""
    from sdpt.detector import GLIP_TINY_RANDOM

    settings = make_settings(tmp_path / "data", worker=True, database_url=database_url)
    settings.model = GLIP_TINY_RANDOM
    with serve(settings, glip_models) as served:
        yield served


TEAM = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3"}


@pytest.fixture
def team_app(tmp_path, ui_models, database_url):
    """(url, context, worker): the whole app with sign-in for alice, bob and carol (passwords in TEAM)."""
    from app.auth import parse_pairs

    settings = make_settings(tmp_path / "data", worker=True, database_url=database_url)
    settings.users = parse_pairs([f"{name}:{password}" for name, password in TEAM.items()], "test")
    with serve(settings, ui_models) as served:
        yield served


@pytest.fixture
def browser():
    """Headless Chromium for one browser test (the browser tests in three modules launch it the same way)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_helpers.CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    browser_helpers.watch(page)
    return page
