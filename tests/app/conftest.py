"""App fixtures: settings in a temporary data directory with a real SQLite file, and a served app."""
import socket

import pytest

from app.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_settings(root, worker: bool = False) -> Settings:
    settings = Settings(data_dir=root, database_url=f"sqlite:///{root / 'app.sqlite'}", model="tiny-random",
                        port=free_port(), worker=worker)
    settings.ensure_dirs()
    return settings


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "data")


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
def served_app(tmp_path, ui_models):
    """(url, context, worker): the whole app with an in-process worker, on a free loopback port."""
    from app.server import build_app, launch_options

    settings = make_settings(tmp_path / "data", worker=True)
    demo, context, worker = build_app(settings, models=ui_models)
    options = launch_options(settings)
    demo.launch(prevent_thread_lock=True, quiet=True, **options)
    yield f"http://127.0.0.1:{settings.port}/", context, worker
    worker.stop()
    demo.close()


TEAM = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3"}


@pytest.fixture
def team_app(tmp_path, ui_models):
    """(url, context, worker): the whole app with sign-in for alice, bob and carol (passwords in TEAM)."""
    from app.auth import parse_pairs
    from app.server import build_app, launch_options

    settings = make_settings(tmp_path / "data", worker=True)
    settings.users = parse_pairs([f"{name}:{password}" for name, password in TEAM.items()], "test")
    demo, context, worker = build_app(settings, models=ui_models)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings))
    yield f"http://127.0.0.1:{settings.port}/", context, worker
    worker.stop()
    demo.close()
