"""Files the page gets: who may fetch each one, and for how long.

Gradio serves anything in its upload folder to any signed-in user who knows the URL, so a URL copied from one user's
page would open for another. Here every file a handler hands to a page (a stored image, a drawn comparison, a COCO
export, a prompt file) is a copy in a folder of its own, named by an HMAC of (user, content) with a secret made at
start, granted to that one user and deleted when the grant expires. Files a user uploads through gradio are granted
to that user alone. app/http_guard.py asks `may_read` on every file URL; handlers that take a file a browser sent
ask `check_upload`, so nobody can pass another user's path back in either.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import logging
import secrets
import shutil
import threading
import time
from pathlib import Path

from app.store import StoreError

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 2 * 3600.0  # a page left open this long reopens its image to get a fresh copy
SWEEP_EVERY_S = 60.0


class ServedFiles:
    """Grants of served files to users. `root` is this app's own folder inside gradio's upload folder (which gradio's
    file route serves); `guarded` are the folders whose files need a grant (gradio's upload and cache folders)."""

    def __init__(self, root: Path, guarded: list[Path], ttl_s: float = DEFAULT_TTL_S, clock=time.time):
        self.root = Path(root).resolve() / secrets.token_hex(8)  # one folder per app run: two apps never collide
        self.guarded = [Path(g).resolve() for g in guarded]
        self.ttl_s, self.clock = ttl_s, clock
        self._secret = secrets.token_bytes(32)
        self._grants: dict[Path, dict[str, float]] = {}  # folder -> {user: expiry}
        self._lock = threading.Lock()
        self._last_sweep = clock()
        self.root.mkdir(parents=True, exist_ok=True)
        _remove_stale_runs(self.root.parent, self.root, ttl_s)

    # --- handing files out -----------------------------------------------------------------------------------------

    def issue(self, source: Path, user: str, name: str | None = None) -> str:
        """A copy of `source` that only `user` may fetch (the same copy again while its grant lasts)."""
        source = Path(source)
        stat = source.stat()
        folder = self._folder(user, f"{source.resolve()}\0{stat.st_mtime_ns}\0{stat.st_size}")
        target = folder / _safe_name(name or source.name)
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        self._grant(folder, user)
        return str(target)

    def issue_image(self, image, user: str, stem: str) -> str:
        """A PIL image saved as PNG that only `user` may fetch (drawn detections, CAM overlays)."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        folder = self._folder(user, hashlib.sha256(data).hexdigest())
        target = folder / f"{_safe_name(stem)}.png"
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        self._grant(folder, user)
        return str(target)

    def grant_upload(self, path: str, user: str) -> None:
        """A file `user` uploaded through gradio: theirs to fetch and to pass to handlers."""
        target = Path(path).resolve()
        if self._is_guarded(target):
            self._grant(target.parent, user)

    # --- checks ----------------------------------------------------------------------------------------------------

    def may_read(self, path: str | Path, user: str | None) -> bool:
        """False for a file in a guarded folder that was not granted to `user`, or whose grant expired."""
        target = Path(path).resolve()
        if not self._is_guarded(target):
            return True  # not a served copy: gradio's own rules apply (the image store is never allowed)
        if not user:
            return False
        with self._lock:
            expiry = self._grants.get(target.parent, {}).get(user)
        return expiry is not None and expiry > self.clock()

    def check_upload(self, path: str | Path, user: str) -> None:
        """Refuse a file path a browser sent unless `user` uploaded (or was served) it."""
        if not self.may_read(path, user):
            raise StoreError("that file is not one you uploaded (or its upload expired); upload it again")

    # --- housekeeping ----------------------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Forget expired grants and delete this app's copies nobody holds any more; returns folders deleted."""
        now = self.clock()
        removed = 0
        with self._lock:
            self._last_sweep = now
            for folder in list(self._grants):
                holders = {u: e for u, e in self._grants[folder].items() if e > now}
                if holders:
                    self._grants[folder] = holders
                    continue
                del self._grants[folder]
                if folder.parent == self.root:  # our copy; gradio's uploads are left to gradio's own cleanup
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        if removed:
            logger.info("deleted %d expired served file folder(s)", removed)
        return removed

    def sweep_if_due(self) -> None:
        """Sweep at most once a minute (called on every request, so copies go soon after they expire)."""
        if self.clock() - self._last_sweep > SWEEP_EVERY_S:
            self.sweep()

    def _grant(self, folder: Path, user: str) -> None:
        with self._lock:
            self._grants.setdefault(folder, {})[user] = self.clock() + self.ttl_s
        self.sweep_if_due()

    def _folder(self, user: str, content_key: str) -> Path:
        token = hmac.new(self._secret, f"{user}\0{content_key}".encode(), hashlib.sha256).hexdigest()[:40]
        return self.root / token

    def _is_guarded(self, target: Path) -> bool:
        return any(target.is_relative_to(folder) for folder in self.guarded)


def _safe_name(name: str) -> str:
    """A file name for the URL: the original's letters, digits, dot, dash and underscore (never a path)."""
    kept = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in Path(name).name)
    return kept.strip("._")[:100] or "file"


def _remove_stale_runs(parent: Path, current: Path, age_s: float) -> None:
    """Copies left by earlier runs of the app (their grants died with the process)."""
    cutoff = time.time() - age_s
    for folder in parent.iterdir():
        try:
            if folder != current and folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
