"""Operating Dockyard: metrics, health checks, tracing and the debug listener.

Cross-cutting, so kept apart from the layers: `metrics` is a leaf any layer may record to;
`instrument` and `health` know only the ports they observe (storage, metadata, cache) and
`oci`; the
wiring from configuration is in `app.observability`, in the composition root.
"""
