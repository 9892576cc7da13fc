"""Middleware every request passes: response headers and OCI errors, metrics and tracing."""
