"""The filesystem blob store: blobs as files under one root directory, for one node or nodes
sharing a POSIX filesystem. Commits are durable renames, holds are flocks that bind every
process of the host, and staged writes bypass the page cache where the filesystem allows."""
