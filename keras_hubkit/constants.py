"""Environment variable names and defaults, read in one place."""

import os

# Same variable as tensorflow_hub, so an existing TF Hub cache is reused.
CACHE_DIR_ENV = "TFHUB_CACHE_DIR"
# Our own switches.
OFFLINE_ENV = "HUBKIT_OFFLINE"
PROGRESS_ENV = "HUBKIT_PROGRESS"
TRUSTED_FINGERPRINTS_ENV = "HUBKIT_TRUSTED_FINGERPRINTS"

# Network defaults (seconds / counts); every one is an argument too.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
MAX_RETRIES = 3
BACKOFF_SECONDS = 0.5

# Archive bounds: a TF Hub model is rarely above a few GiB.
MAX_ARCHIVE_BYTES = 20 * 1024**3
MAX_ARCHIVE_MEMBERS = 100_000

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
