"""Environment variable names and defaults, read in one place."""

import os

# Same variable as tensorflow_hub, so an existing TF Hub cache is reused.
CACHE_DIR_ENV = "TFHUB_CACHE_DIR"
# Our own switches.
OFFLINE_ENV = "HUBKIT_OFFLINE"
PROGRESS_ENV = "HUBKIT_PROGRESS"
TRUSTED_FINGERPRINTS_ENV = "HUBKIT_TRUSTED_FINGERPRINTS"
# Credentials per host for downloads ("host=user:password" or
# "host=Bearer TOKEN", entries separated by ";" or newlines).
HTTP_AUTH_ENV = "HUBKIT_HTTP_AUTH"
# Overrides DOWNLOAD_DEADLINE (seconds).
DOWNLOAD_DEADLINE_ENV = "HUBKIT_DOWNLOAD_DEADLINE"

# Network defaults (seconds / counts); every one is an argument too.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
MAX_RETRIES = 3
BACKOFF_SECONDS = 0.5
# The longest a whole download may take, retries included. Per-read
# timeouts alone never end a server that sends one byte just before each
# timeout. Four hours lets MAX_ARCHIVE_BYTES of gzip'd model arrive at
# about 1.5 MB/s.
DOWNLOAD_DEADLINE = 4 * 3600.0
MAX_REDIRECTS = 10

# Archive bounds: a TF Hub model is rarely above a few GiB.
MAX_ARCHIVE_BYTES = 20 * 1024**3
MAX_ARCHIVE_MEMBERS = 100_000
# Tar extension headers (pax records, GNU long names/links) are read into
# memory whole, so they are bounded before being read: one header, all of
# them together, and how many may precede one member. A path is at most
# 4 KiB on Linux; real archives use a few hundred bytes per header.
MAX_TAR_HEADER_BYTES = 64 * 1024
MAX_TAR_HEADERS_TOTAL_BYTES = 16 * 1024**2
MAX_TAR_HEADER_CHAIN = 8
# Bytes after the tar end-of-archive marker (block padding): GNU tar pads to
# its record size, at most a few hundred KiB.
MAX_TAR_TRAILER_BYTES = 4 * 1024**2

# The download lock is a flock: the kernel frees it when its holder dies,
# and waiters notice within one poll.
LOCK_POLL_SECONDS = 0.2

TRUTHY = ("1", "true", "yes", "on")


def env_flag(name: str) -> bool:
    """Whether the environment variable `name` is set to a truthy value."""
    return os.environ.get(name, "").strip().lower() in TRUTHY


# Data splits of `hubkit train` and recipes (fractions). 0.2 each, as TF
# Hub's make_image_classifier; a search needs the validation split.
TEST_SPLIT = 0.2
VALIDATION_SPLIT = 0.2


def env_seconds(name: str, default: float) -> float:
    """The positive number of seconds in environment variable `name`.

    Raises:
        ConfigError: the variable is set to something else.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        from keras_hubkit import errors

        raise errors.ConfigError(
            f"Expected a positive number of seconds in {name}. Received: "
            f"{name}={raw!r}. Set it to e.g. 3600, or unset it for the "
            f"default ({default:g}s)."
        )
    return value
