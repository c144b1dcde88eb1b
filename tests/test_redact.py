"""keras_hubkit._redact: credentials out of displayed and stored handles."""

import pytest

from keras_hubkit._redact import has_credentials
from keras_hubkit._redact import redact
from keras_hubkit._redact import strip_credentials

CLEAN = [
    "/models/mul",
    "https://models.example/google/nnlm-en-dim50/2",
    "https://h/m?tf-hub-format=compressed&b=a%20c&a=1",
    "https://h/m?",  # exact text kept: it is the cache key
    "https://h/m?model_key=a&v=1",
    "gs://bucket/model.tar.gz",
]


@pytest.mark.parametrize("handle", CLEAN)
def test_handles_without_credentials_are_unchanged(handle):
    assert redact(handle) == handle
    assert strip_credentials(handle) == handle
    assert not has_credentials(handle)


def test_fragments_are_not_shown_but_kept_for_the_cache_key():
    assert redact("https://h/m#frag") == "https://h/m"
    assert strip_credentials("https://h/m#frag") == "https://h/m#frag"


@pytest.mark.parametrize(
    "handle, shown, stored",
    [
        (
            "https://u:p@h/m?token=abc&x=1",
            "https://***@h/m?token=***&x=1",
            "https://h/m?x=1",
        ),
        (
            "https://ghp_tok@h:8443/m",
            "https://***@h:8443/m",
            "https://h:8443/m",
        ),
        (
            "https://s/b?X-Goog-Signature=zz&X-Amz-Credential=c&v=2",
            "https://s/b?X-Goog-Signature=***&X-Amz-Credential=***&v=2",
            "https://s/b?v=2",
        ),
        (
            "https://h/m?access_token=a&api_key=b&key=c",
            "https://h/m?access_token=***&api_key=***&key=***",
            "https://h/m",
        ),
        (
            "https://h/cb#access_token=a",
            "https://h/cb",
            "https://h/cb",
        ),
    ],
)
def test_credentials_are_masked_or_removed(handle, shown, stored):
    assert redact(handle) == shown
    assert strip_credentials(handle) == stored
    assert has_credentials(handle)
    assert strip_credentials(shown) == stored  # a masked handle stores clean


class _BadStr:
    def __str__(self):
        raise RuntimeError("no")


@pytest.mark.parametrize(
    "thing",
    [None, 3, b"https://u:s3cret@h/m", _BadStr(), "http://[::1?token=s3cret"],
)
def test_never_raises_and_never_shows_a_secret(thing):
    for fn in (redact, strip_credentials):
        text = fn(thing)
        assert isinstance(text, str)
        assert "s3cret" not in text
