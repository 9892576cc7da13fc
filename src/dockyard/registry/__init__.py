"""The registry's rules: repositories, uploads, manifests, tags, referrers, mounts, deletion."""
