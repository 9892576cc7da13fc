"""The composition root: the only package that reads configuration and builds backends.

Its modules are imported one by one, never from here: the supervisor imports only what it
needs, and every library a worker does not use is memory it does not pay for.
"""
