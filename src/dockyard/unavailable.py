"""The one failure every layer may raise and the HTTP layer answers with 503.

A leaf module like `oci`: storage and metadata raise it when a backend (the database, the
object store) cannot be reached, and the API turns it into a retryable error instead of a 500,
without either side knowing the other.
"""

from __future__ import annotations


class ServiceUnavailable(Exception):
    """A backend cannot be reached right now; the request may succeed if retried."""
