"""Small helpers shared by tests."""

import os
import socket


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cache_is_clean(cache_dir):
    """Nothing but lock files: no entry, no temp folder."""
    if not os.path.isdir(cache_dir):
        return True
    return all(name.endswith(".lock") for name in os.listdir(cache_dir))


def fast_download(**kwargs):
    """`hk.resolve` keyword arguments for loopback tests: short timeouts,
    no progress bar."""
    return {
        "read_timeout": 2,
        "connect_timeout": 2,
        "progress": False,
        **kwargs,
    }
