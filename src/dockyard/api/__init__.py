"""HTTP: routing, request parsing, OCI error bodies and headers. No SQL, no files."""
