"""Registry facts in a relational database: one schema for SQLite and PostgreSQL."""
