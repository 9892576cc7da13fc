"""Alembic migrations: env.py and one module per schema revision in versions/."""
