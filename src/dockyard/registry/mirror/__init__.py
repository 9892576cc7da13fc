"""The pull-through cache: repositories whose manifests and blobs come from an upstream.

A mirrored repository answers from what is cached and fetches the rest from its upstream on
first pull, once however many clients ask (`flights`), keeps serving what it has when the
upstream is away, and takes no pushes.
"""
