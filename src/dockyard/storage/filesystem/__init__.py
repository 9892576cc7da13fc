"""The filesystem blob store: blobs as files under one root, staged writes bypass the cache."""
