"""Alembic migrations of the app's schema; app/db.py runs them (`upgrade_schema`) when a database is opened."""
