"""The database engine and sessions; SQLite gets WAL, foreign keys and a busy timeout so the UI and workers share it.
Opening a database brings its schema to the newest Alembic revision (app/migrations), copying an SQLite file aside
first."""
from __future__ import annotations

import contextlib
import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.models import DEFAULT_OWNER

try:
    import fcntl
except ImportError:  # Windows: no advisory file locks; start the app before any external worker there
    fcntl = None

logger = logging.getLogger(__name__)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a dozen lines per start otherwise
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"  # the schema of the release before Alembic
# any fixed 64-bit number: PostgreSQL sessions that upgrade at the same time queue on it
PG_MIGRATION_LOCK = 0x5D97_0001


def driver_url(url: str) -> str:
    """A plain postgresql:// (or Heroku-style postgres://) URL uses psycopg 3, the driver in the requirements;
    SQLAlchemy would otherwise look for psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = driver_url(url)
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    else:
        # a pooled connection per concurrent handler (the queue runs 16 at once): with the default 5, the 6th to
        # 16th open and close a server connection on every call, which put PostgreSQL's p95 box save over 300 ms
        engine = create_engine(url, pool_size=16, max_overflow=8, pool_pre_ping=True)
    if is_sqlite:
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (labelling during tuning)
            # WAL + NORMAL: a commit survives an app crash; only an OS crash or power cut can lose the last ones.
            # Saves no longer wait for an fsync each.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    return engine


def _alembic_config(admin_user: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["admin_user"] = admin_user
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(DEFAULT_OWNER)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _sqlite_file(engine: Engine) -> Path | None:
    name = engine.url.database
    return Path(name) if engine.dialect.name == "sqlite" and name and name != ":memory:" else None


def _copy_aside(path: Path, revision: str | None) -> Path:
    """A consistent copy (SQLite's backup API, safe with WAL and other readers) next to the database."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.before-{revision or 'alembic'}-{stamp}.bak")
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target


def upgrade_schema(engine: Engine, admin_user: str = DEFAULT_OWNER) -> str:
    """Bring the schema to the newest revision; returns what was done (logged too).

    A new database is built by the migrations; a database from before Alembic (tables, no alembic_version) is
    stamped as the baseline first, then upgraded. An SQLite file with data is copied aside before any change.
    """
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return f"schema at {head}"
    sqlite_file = _sqlite_file(engine)
    if sqlite_file is None or fcntl is None:
        return _upgrade(engine, admin_user, head)
    # the app and a `python -m app.worker` started together must not both upgrade one file
    with open(sqlite_file.with_name(sqlite_file.name + ".upgrade-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if current_revision(engine) == head:
            return f"schema at {head} (upgraded by another process)"
        return _upgrade(engine, admin_user, head)


def _upgrade(engine: Engine, admin_user: str, head: str) -> str:
    from alembic import command

    current = current_revision(engine)
    tables = set(inspect(engine).get_table_names())
    backup = None
    if tables and _sqlite_file(engine) is not None and _sqlite_file(engine).exists():
        backup = _copy_aside(_sqlite_file(engine), current)
    config = _alembic_config(admin_user)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        config.attributes["connection"] = connection
        if current is None and "projects" in tables and current_revision_of(connection) is None:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    done = (f"upgraded the schema from {current or ('the pre-Alembic release' if tables else 'nothing')} to {head}"
            + (f"; the database before was copied to {backup}" if backup else ""))
    logger.info(done)
    return done


def current_revision_of(connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


class Database:
    """An engine plus a session factory; `with db.session() as s:` commits on success, rolls back on error."""

    def __init__(self, url: str, admin_user: str = DEFAULT_OWNER, upgrade: bool = True):
        self.url = url
        self.engine = make_engine(url)
        self.schema_note = upgrade_schema(self.engine, admin_user) if upgrade else "not upgraded"
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
