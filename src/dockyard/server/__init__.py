"""Processes: serve (the light supervisor), workers, draining, reload, TLS, the debug listener."""
