"""Where the app keeps its data and which model it serves: command-line flags over environment over defaults."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from app.auth import collect_users, on_space
from app.models import DEFAULT_OWNER
from sdpt.methods import DEFAULT_METHOD  # re-exported: the library names the default method, the app follows it

DEFAULT_MODEL = "IDEA-Research/grounding-dino-tiny"
SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "assets" / "sdpt-small"
MAX_UPLOAD_MB = 20  # per file; larger uploads are refused before they are read
DEFAULT_STEPS = 200


def default_data_dir() -> Path:
    """A Hugging Face Space's persistent storage when it is mounted, else ./data next to app.py."""
    space_storage = Path("/data")
    if space_storage.is_dir() and os.access(space_storage, os.W_OK):
        return space_storage / "sdpt"
    return Path(__file__).resolve().parent.parent / "data"


@dataclass
class Settings:
    data_dir: Path
    database_url: str
    model: str
    host: str = "127.0.0.1"
    port: int = 7860
    worker: bool = True  # run a tuning worker thread inside the app process
    max_upload_mb: int = MAX_UPLOAD_MB
    users: dict[str, str] = field(default_factory=dict)  # user name -> scrypt hash (app/auth.py)
    oauth: bool = False  # Hugging Face sign-in (on a Space with hf_oauth: true)
    admin_user: str = DEFAULT_OWNER  # single-user mode's user; owns the projects of databases from before sign-in
    # a running job whose worker sent no heartbeat for this long shows as interrupted to whoever asks (the worker's
    # --stale-after; ZeroGPU's chunked runs pause between calls and use a longer one)
    stale_after_s: float = 30.0

    @property
    def sign_in(self) -> str:
        """"oauth", "password" or "none" (single-user mode)."""
        return "oauth" if self.oauth else "password" if self.users else "none"

    @property
    def exposed_without_sign_in(self) -> bool:
        return self.sign_in == "none" and self.host not in ("127.0.0.1", "localhost", "::1")

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def prompts_dir(self) -> Path:
        return self.data_dir / "prompts"

    def ensure_dirs(self) -> None:
        for directory in (self.data_dir, self.images_dir, self.prompts_dir):
            directory.mkdir(parents=True, exist_ok=True)


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where images, prompts and the SQLite database live (env SDPT_DATA_DIR; "
                             "default /data/sdpt on a Space with storage, else ./data)")
    parser.add_argument("--database-url", default=None,
                        help="any SQLAlchemy URL (env SDPT_DATABASE_URL; default sqlite in the data dir)")
    parser.add_argument("--model", default=None,
                        help=f"hub id or local model directory (env SDPT_MODEL; default {DEFAULT_MODEL}, "
                             "falling back to the shipped small model when the hub cannot be reached)")
    parser.add_argument("--host", default=None, help="interface to serve on (env SDPT_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (env SDPT_PORT or GRADIO_SERVER_PORT; 7860)")
    parser.add_argument("--auth", action="append", default=None, metavar="USER:PASSWORD",
                        help="a user who may sign in (repeatable; env SDPT_AUTH='alice:pw1,bob:pw2')")
    parser.add_argument("--users-file", type=Path, default=None,
                        help="a file of NAME:scrypt-hash lines (env SDPT_USERS_FILE; make a line with "
                             "`python -m app.auth NAME`)")
    parser.add_argument("--admin", default=None,
                        help=f"user who owns the projects of a database from before sign-in (env SDPT_ADMIN; "
                             f"default {DEFAULT_OWNER!r})")
    parser.add_argument("--no-worker", action="store_true",
                        help="do not run tuning jobs in this process (run `python -m app.worker` instead)")
    return parser


def resolve(args: argparse.Namespace) -> Settings:
    env = os.environ
    data_dir = Path(args.data_dir or env.get("SDPT_DATA_DIR") or default_data_dir()).resolve()
    url = args.database_url or env.get("SDPT_DATABASE_URL") or f"sqlite:///{data_dir / 'sdpt.sqlite'}"
    host = args.host or env.get("SDPT_HOST") or env.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = args.port or int(env.get("SDPT_PORT") or env.get("GRADIO_SERVER_PORT") or 7860)
    model = getattr(args, "model", None) or env.get("SDPT_MODEL") or DEFAULT_MODEL
    users_file = getattr(args, "users_file", None) or env.get("SDPT_USERS_FILE")
    users = collect_users(getattr(args, "auth", None), env.get("SDPT_AUTH"), Path(users_file) if users_file else None)
    admin = getattr(args, "admin", None) or env.get("SDPT_ADMIN") or DEFAULT_OWNER
    settings = Settings(data_dir=data_dir, database_url=url, model=model, host=host, port=port,
                        worker=not getattr(args, "no_worker", False), users=users, oauth=on_space(),
                        admin_user=admin)
    settings.ensure_dirs()
    return settings
