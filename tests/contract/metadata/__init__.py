"""The metadata contract (dockyard.metadata.interfaces), run on every implementation."""
