"""Dockyard benchmark harness: Dockyard side by side with the Go reference registry."""
