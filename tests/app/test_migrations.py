"""Upgrades keep data: a database written by the release before Alembic (a committed fixture made by that code,
see fixtures/make_release_db.py) is upgraded and every row of every table is checked; the baseline revision is
checked to build exactly that release's schema."""
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from app import access, store
from app.db import BASELINE, Database, _alembic_config, current_revision, head_revision

FIXTURE = Path(__file__).parent / "fixtures" / "release-70cfd7b.sqlite"
RELEASE_TABLES = ("projects", "classes", "images", "boxes", "tuning_jobs", "prompts")


def rows(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as connection:
        return {t: connection.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in RELEASE_TABLES}


def columns(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as connection:
        return {t: [r[1] for r in connection.execute(f"PRAGMA table_info({t})")] for t in RELEASE_TABLES}


def schema(url: str, tables=RELEASE_TABLES) -> dict:
    engine = create_engine(url)
    found = inspect(engine)
    described = {}
    for table in tables:
        described[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
            "primary": found.get_pk_constraint(table)["constrained_columns"],
            "foreign": sorted((tuple(f["constrained_columns"]), f["referred_table"], f["options"].get("ondelete"))
                              for f in found.get_foreign_keys(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in found.get_indexes(table)),
            "unique": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(table)),
        }
    engine.dispose()
    return described


def test_upgrade_from_the_release_before_alembic_keeps_every_row(tmp_path):
    path = tmp_path / "sdpt.sqlite"
    shutil.copyfile(FIXTURE, path)
    before, old_columns = rows(path), columns(path)
    assert all(before[t] for t in RELEASE_TABLES), "the fixture must hold rows of every table"
    assert {r[7] for r in before["images"]} == {"train", "heldout"}  # both splits are there to be kept

    database = Database(f"sqlite:///{path}", admin_user="alice")
    assert "upgraded the schema from the pre-Alembic release" in database.schema_note
    assert current_revision(database.engine) == head_revision()
    database.engine.dispose()

    with sqlite3.connect(path) as connection:  # the release's columns are unchanged, row for row
        for table in RELEASE_TABLES:
            kept = [c for c in old_columns[table] if (table, c) != ("projects", "name_key")]
            old_rows = [tuple(v for c, v in zip(old_columns[table], row) if c in kept) for row in before[table]]
            assert connection.execute(f"SELECT {', '.join(kept)} FROM {table} ORDER BY id").fetchall() == old_rows, \
                table
        owners = connection.execute("SELECT DISTINCT owner FROM projects").fetchall()
        keys = connection.execute("SELECT name_key FROM projects ORDER BY id").fetchall()
    assert owners == [("alice",)]  # every existing project belongs to the configured admin user
    # revision 0005: project names are unique per owner, the key says whose
    old_keys = [row[old_columns["projects"].index("name_key")] for row in before["projects"]]
    assert keys == [(f"alice:{key}",) for key in old_keys]
    assert_loop_defaults(f"sqlite:///{path}", boxed={r[0] for r in before["images"]})

    (backup,) = tmp_path.glob("sdpt.sqlite.before-alembic-*.bak")
    assert rows(backup) == before and "owner" not in columns(backup)["projects"]

    database = Database(f"sqlite:///{path}", admin_user="alice")  # the app reads it as before
    assert database.schema_note == f"schema at {head_revision()}"
    alice, bob = access.User("alice"), access.User("bob")
    with database.session() as session:
        visible = access.visible_projects(session, alice)
        assert [p.name for p, _ in visible] == ["Blood cells", "Parts", "Ćelije"]
        assert access.visible_projects(session, bob) == []
        first = visible[0][0]
        images = store.list_images(session, first.id)
        assert [len(i.boxes) for i in images] == [1, 2, 3]
        assert [b.label.name for b in images[1].boxes] == ["platelet", "kind 0"]
        assert images[2].boxes[0].x1 == 40.5 and images[2].split == "heldout"
        assert store.latest_prompt(session, first.id).final_loss == 0.125
        assert [j.status for j in store.list_jobs(session, first.id)] == ["queued", "done"]
    assert not list(tmp_path.glob("*.bak"))[1:], "an up-to-date database is not copied again"


def assert_loop_defaults(url: str, boxed: set[int]) -> None:
    """Revision 0003 (the labelling loop) gave every old row its default: images with boxes are reviewed (jobs
    leave them alone), the others not; old jobs are tuning jobs; no suggestions, descriptions or curve points."""
    from sqlalchemy import text

    engine = create_engine(url)
    with engine.connect() as connection:
        reviewed = {i: bool(r) for i, r in connection.execute(text("SELECT id, reviewed FROM images"))}
        assert reviewed == {i: i in boxed for i in reviewed}
        assert {k for (k,) in connection.execute(text("SELECT kind FROM tuning_jobs"))} == {"tune"}
        assert connection.execute(text("SELECT count(*) FROM tuning_jobs WHERE prompt_id IS NOT NULL OR "
                                       "threshold IS NOT NULL")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM projects WHERE description IS NOT NULL")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM prompts WHERE confirmed_boxes IS NOT NULL OR "
                                       "heldout_map IS NOT NULL OR heldout_map50 IS NOT NULL OR heldout_images IS "
                                       "NOT NULL")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM suggestions")).scalar() == 0
    engine.dispose()


def test_upgrade_marks_only_images_with_boxes_as_reviewed(tmp_path):
    """An image of the release without boxes (never labelled) stays unreviewed, so pre-annotate all visits it;
    its project, its sibling images and their boxes are all kept."""
    path = tmp_path / "sdpt.sqlite"
    shutil.copyfile(FIXTURE, path)
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO images (id, project_id, sha256, suffix, original_name, width, height, split, "
                           "revision, created_at) VALUES (10, 3, ?, '.png', 'unlabelled.png', 64, 48, 'train', 0, "
                           "'2026-11-30 15:00:00')", ("0303" + "b" * 60,))
    before = rows(path)
    boxed = {image_id for (_, image_id, *_rest) in before["boxes"]}
    assert 10 not in boxed and len(before["images"]) == 10
    Database(f"sqlite:///{path}", admin_user="alice").engine.dispose()
    assert {t: len(r) for t, r in rows(path).items()} == {t: len(r) for t, r in before.items()}
    assert_loop_defaults(f"sqlite:///{path}", boxed=boxed)
    database = Database(f"sqlite:///{path}", admin_user="alice")
    with database.session() as session:  # the loop reads the upgraded rows: only the unlabelled image is left
        from app import suggestions

        assert suggestions.next_to_review(session, 3) == 10
        counts = suggestions.review_counts(session, 3)
        assert counts["images"]["unreviewed"] == 1 and counts["boxes"]["suggested"] == 0
    database.engine.dispose()


def test_the_baseline_revision_builds_the_release_schema_exactly(tmp_path):
    from alembic import command

    built = tmp_path / "baseline.sqlite"
    engine = create_engine(f"sqlite:///{built}")
    config = _alembic_config("admin")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, BASELINE)
    engine.dispose()
    assert schema(f"sqlite:///{built}") == schema(f"sqlite:///{FIXTURE}")


def test_a_new_database_gets_the_newest_schema_from_the_migrations(tmp_path):
    from app.models import Base

    database = Database(f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert current_revision(database.engine) == head_revision()
    tables = sorted(Base.metadata.tables)
    built = schema(database.url, tables)
    for table in tables:  # every model column exists with the model's nullability
        model = Base.metadata.tables[table]
        assert [(c[0], c[2]) for c in built[table]["columns"]] == [(c.name, c.nullable) for c in model.columns], table


def test_python_app_py_upgrades_an_older_database_on_start(tmp_path):
    """The real entry point on a data directory holding the release's database: it copies the file aside,
    upgrades it, logs what it did and serves."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.app.conftest import free_port

    root = Path(__file__).resolve().parents[2]
    data = tmp_path / "d"
    data.mkdir()
    shutil.copyfile(FIXTURE, data / "sdpt.sqlite")
    before = rows(data / "sdpt.sqlite")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root), "SDPT_MODEL": "tiny-random"}
    log = tmp_path / "app.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir", str(data),
                                    "--admin", "alice", "--no-worker"], cwd=root, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        deadline, served = time.monotonic() + 90, False
        while time.monotonic() < deadline and process.poll() is None and not served:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                    served = response.status == 200
            except OSError:
                time.sleep(0.5)
        assert served, log.read_text()[-3000:]
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    assert "upgraded the schema from the pre-Alembic release to" in text and "copied to" in text, text[-3000:]
    (backup,) = data.glob("sdpt.sqlite.before-alembic-*.bak")
    assert rows(backup) == before
    with sqlite3.connect(data / "sdpt.sqlite") as connection:
        assert connection.execute("SELECT DISTINCT owner FROM projects").fetchall() == [("alice",)]
        assert connection.execute("SELECT count(*) FROM boxes").fetchone()[0] == len(before["boxes"])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_upgrade_on_postgresql_keeps_every_row(database_url):
    """The release's rows (from the fixture) in a PostgreSQL database at the baseline revision, as a server that
    ran the release holds them; the upgrade keeps every row and gives the projects their owner."""
    from alembic import command
    from sqlalchemy import MetaData, select, text

    config = _alembic_config("admin")
    target = create_engine(database_url)
    with target.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, BASELINE)
        connection.execute(text("DROP TABLE alembic_version"))  # the release had no Alembic
    source = create_engine(f"sqlite:///{FIXTURE}")
    old, new = MetaData(), MetaData()
    old.reflect(source, only=RELEASE_TABLES)
    new.reflect(target, only=RELEASE_TABLES)
    before = {}
    with source.connect() as reading, target.begin() as writing:
        for table in RELEASE_TABLES:  # in foreign-key order
            before[table] = [dict(r._mapping) for r in reading.execute(select(old.tables[table])
                                                                       .order_by(old.tables[table].c.id))]
            writing.execute(new.tables[table].insert(), before[table])
            writing.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))"))
    source.dispose()
    target.dispose()

    database = Database(database_url, admin_user="alice")
    assert "upgraded the schema from the pre-Alembic release" in database.schema_note
    upgraded = MetaData()
    upgraded.reflect(database.engine, only=(*RELEASE_TABLES, "project_shares"))
    with database.engine.connect() as connection:
        for table in RELEASE_TABLES:
            columns = [upgraded.tables[table].c[name] for name in before[table][0]]
            after = [dict(r._mapping) for r in connection.execute(select(*columns)
                                                                  .order_by(upgraded.tables[table].c.id))]
            if table == "projects":  # revision 0005: the name key says whose (names are unique per owner)
                before[table] = [{**row, "name_key": f"alice:{row['name_key']}"} for row in before[table]]
            assert after == before[table], table
        assert connection.execute(text("SELECT DISTINCT owner FROM projects")).fetchall() == [("alice",)]
    assert_loop_defaults(database_url, boxed={r["id"] for r in before["images"]})
    with database.session() as session:  # new rows get new ids after the copied ones
        project = store.create_project(session, "After the upgrade", owner="bob")
        assert project.id > max(r["id"] for r in before["projects"])
    database.engine.dispose()


def _open_database(path, results):
    results.put(Database(f"sqlite:///{path}", admin_user="alice").schema_note)


def test_processes_opening_an_old_sqlite_file_together_upgrade_it_once(tmp_path):
    """The app and external workers started at once: one upgrades (and copies the file aside), the others wait."""
    import multiprocessing

    path = tmp_path / "sdpt.sqlite"
    shutil.copyfile(FIXTURE, path)
    before = rows(path)
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    processes = [spawn.Process(target=_open_database, args=(path, results)) for _ in range(3)]
    for process in processes:
        process.start()
    notes = sorted(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(30)
    upgraded = [n for n in notes if n.startswith("upgraded the schema from the pre-Alembic release")]
    assert len(upgraded) == 1, notes  # the others waited for it, or came after it
    assert all(n.startswith(f"schema at {head_revision()}") for n in notes if n not in upgraded), notes
    assert len(list(tmp_path.glob("sdpt.sqlite.before-*.bak"))) == 1
    assert {t: len(r) for t, r in rows(path).items()} == {t: len(r) for t, r in before.items()}


def test_plain_postgresql_urls_use_the_driver_in_the_requirements():
    from app.db import driver_url

    assert driver_url("postgresql://u:p@db:5432/sdpt") == "postgresql+psycopg://u:p@db:5432/sdpt"
    assert driver_url("postgres://u@db/sdpt") == "postgresql+psycopg://u@db/sdpt"
    assert driver_url("postgresql+psycopg://u@db/sdpt") == "postgresql+psycopg://u@db/sdpt"
    assert driver_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
