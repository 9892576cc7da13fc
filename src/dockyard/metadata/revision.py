"""The schema revision this Dockyard's migrations end at.

Kept as a constant so that a worker's readiness check need not load Alembic (about 9 MiB a
process) to learn it; a test holds it equal to the last migration's revision.
"""

SCHEMA_HEAD = "0004"
