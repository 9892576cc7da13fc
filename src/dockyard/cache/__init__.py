"""Caching for hot lookups, shared by the nodes of one registry (Redis)."""
