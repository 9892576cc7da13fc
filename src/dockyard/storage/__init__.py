"""Blob bytes: where content-addressed blobs and staged uploads live."""
