"""The OCI vocabulary: names, tags, digests, media types and manifest shapes.

A leaf package: it imports nothing else from Dockyard.
"""
