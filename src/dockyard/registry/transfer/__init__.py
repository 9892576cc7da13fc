"""Moving images in and out as OCI image layouts: `dockyard export` and `dockyard import`.

Both work through the registry's services (manifests, uploads, listings), so what an import
writes is validated, evented and linked exactly as a push would be.
"""
