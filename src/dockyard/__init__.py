"""Dockyard: a container image registry speaking OCI Distribution 1.1."""

__version__ = "0.1.0"
