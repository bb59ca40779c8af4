"""What every UI handler needs: the database, the settings, the UI's model and the signed-in user of the request."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from app.access import User
from app.auth import user_name
from app.db import Database
from app.models_service import ModelService
from app.served_files import ServedFiles
from app.settings import Settings


def gradio_served_files() -> ServedFiles:
    """Grants for the folders gradio's file route serves (its upload folder and its examples cache)."""
    from gradio.utils import get_cache_folder, get_upload_folder

    upload = Path(get_upload_folder())
    return ServedFiles(upload / "sdpt-served", guarded=[upload, get_cache_folder()])


@dataclass
class AppContext:
    database: Database
    settings: Settings
    models: ModelService
    user: User | None = None  # set per request by for_request; None outside a request
    files: ServedFiles = field(default_factory=gradio_served_files)  # shared by every request's copy

    def signed_in_user(self) -> User | None:
        """The user access checks apply to: the request's, or in single-user mode the one user."""
        if self.user is not None:
            return self.user
        if self.settings.sign_in == "none":
            return User(self.settings.admin_user, everything=True)
        return None

    def served(self, path: Path, name: str | None = None) -> str:
        """A copy of `path` for this request's page that only its user may fetch (app/served_files.py)."""
        return self.files.issue(path, self._file_user(), name)

    def served_image(self, image, stem: str) -> str:
        return self.files.issue_image(image, self._file_user(), stem)

    def check_upload(self, path) -> None:
        """Refuse a file path the browser sent unless this user uploaded it."""
        if self.settings.sign_in != "none":
            self.files.check_upload(path, self._file_user())

    def _file_user(self) -> str:
        user = self.signed_in_user()
        return user.name if user is not None else ""

    def for_request(self, request) -> "AppContext":
        """This context for the user a gradio request carries (app/ui/signed_in.py does this for UI handlers)."""
        if self.settings.sign_in == "none":
            return dataclasses.replace(self, user=User(self.settings.admin_user, everything=True))
        name = user_name(request, oauth=self.settings.sign_in == "oauth")
        return dataclasses.replace(self, user=User(name) if name else None)
