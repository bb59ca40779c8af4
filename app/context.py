"""What every UI handler needs: the database, the settings, the UI's model and the signed-in user of the request."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from app.access import User
from app.auth import user_name
from app.db import Database
from app.models_service import ModelService
from app.settings import Settings


@dataclass
class AppContext:
    database: Database
    settings: Settings
    models: ModelService
    user: User | None = None  # set per request by for_request; None outside a request

    def signed_in_user(self) -> User | None:
        """The user access checks apply to: the request's, or in single-user mode the one user."""
        if self.user is not None:
            return self.user
        if self.settings.sign_in == "none":
            return User(self.settings.admin_user, everything=True)
        return None

    def for_request(self, request) -> "AppContext":
        """This context for the user a gradio request carries (app/ui/signed_in.py does this for UI handlers)."""
        if self.settings.sign_in == "none":
            return dataclasses.replace(self, user=User(self.settings.admin_user, everything=True))
        name = user_name(request, oauth=self.settings.sign_in == "oauth")
        return dataclasses.replace(self, user=User(name) if name else None)
