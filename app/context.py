"""What every UI handler needs: the database, the settings and the UI's model."""
from __future__ import annotations

from dataclasses import dataclass

from app.db import Database
from app.models_service import ModelService
from app.settings import Settings


@dataclass
class AppContext:
    database: Database
    settings: Settings
    models: ModelService
