"""Table tests for the spec's grammars: names, tags, digests, ranges."""

from __future__ import annotations

import pytest

from registry.oci.digests import UnsupportedDigest, parse_digest
from registry.oci.errors import DigestInvalid, NameInvalid
from registry.oci.names import check_name, is_tag
from registry.oci.ranges import Unsatisfiable, parse_content_range, parse_range

NAMES = [
    ("library/ubuntu", True), ("a", True), ("a/b/c/d", True), ("my-app", True),
    ("my--app", True), ("my_app", True), ("my__app", True), ("my.app", True),
    ("a" * 255, True), ("a" * 256, False), ("Library", False), ("lib/../x", False),
    ("lib//x", False), ("/lib", False), ("lib/", False), ("-lib", False), ("lib-", False),
    ("my___app", False), ("my..app", False), ("", False), ("lib/ x", False), ("é", False),
    # A `$` matches before a trailing newline: names are matched in full.
    ("app\n", False), ("lib/app\n", False), ("\napp", False), ("lib\n/app", False),
]


@pytest.mark.parametrize("name,valid", NAMES)
def test_repository_names(name, valid):
    if valid:
        assert check_name(name) == name
    else:
        with pytest.raises(NameInvalid):
            check_name(name)


TAGS = [("latest", True), ("v1.2.3", True), ("_private", True), ("A-b_c.D", True),
        ("t" * 128, True), ("t" * 129, False), ("-leading", False), (".leading", False),
        ("with+plus", False), ("with/slash", False), ("", False), ("sha256:abc", False),
        ("v1\n", False), ("latest\n", False), ("\nlatest", False), ("t" * 127 + "\n", False)]


@pytest.mark.parametrize("tag,valid", TAGS)
def test_tags(tag, valid):
    assert is_tag(tag) is valid


HEX64 = "a" * 64
DIGESTS = [
    (f"sha256:{HEX64}", None), (f"sha512:{'b' * 128}", None),
    (f"sha256:{HEX64[:-1]}", DigestInvalid), (f"sha256:{'A' * 64}", DigestInvalid),
    (f"sha256:{'g' * 64}", DigestInvalid), (f"sha512:{HEX64}", DigestInvalid),
    ("sha256", DigestInvalid), ("sha256:", DigestInvalid), (":abc", DigestInvalid),
    (f"md5:{'a' * 32}", UnsupportedDigest), (f"sha384:{'a' * 96}", UnsupportedDigest),
    (f"SHA256:{HEX64}", DigestInvalid), ("", DigestInvalid),
    (f"sha256:{HEX64}\n", DigestInvalid), (f"md5:{'a' * 32}\n", DigestInvalid),
    (f"sha256:{HEX64[:-1]}\n", DigestInvalid),
]


@pytest.mark.parametrize("text,error", DIGESTS)
def test_digests(text, error):
    if error is None:
        assert str(parse_digest(text)) == text
    else:
        with pytest.raises(error):
            parse_digest(text)


RANGES = [  # header, size, expected (first, last) | None (whole) | "416"; rules in ranges.py
    (None, 100, None), ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)), ("bytes=-1000", 100, (0, 99)), ("bytes=50-1000", 100, (50, 99)),
    ("bytes=100-200", 100, "416"), ("bytes=10-5", 100, "416"), ("bytes=-0", 100, "416"),
    ("BYTES=0-9", 100, (0, 9)), ("bytes= 0-9 ", 100, (0, 9)), ("bytes=99-99", 100, (99, 99)),
    ("bytes=0-" + "9" * 5000, 100, (0, 99)), ("bytes=" + "9" * 5000 + "-", 100, "416"),
    ("bytes=-" + "9" * 5000, 100, (0, 99)), ("bytes=0000000000000000000000005-6", 100, (5, 6)),
    # several ranges and unknown units are ignored (whole blob)
    ("bytes=0-1,5-6", 100, None), ("items=0-1", 100, None), ("bytes", 100, None),
    # malformed byte ranges are refused
    ("bytes=a-b", 100, "416"), ("bytes=-", 100, "416"), ("bytes=", 100, "416"),
    ("bytes=\u0661-\u0662", 100, "416"), ("bytes=1-2-3", 100, "416"),
    # an empty blob has no byte range to send: whole (empty) blob for any well-formed range
    ("bytes=0-0", 0, None), ("bytes=-5", 0, None), ("bytes=5-", 0, None), ("bytes=-0", 0, None),
    ("bytes=a-b", 0, "416"),
]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} chars)"


@pytest.mark.parametrize("header,size,expected", RANGES,
                         ids=[f"{_short(h)}-{n}" for h, n, _ in RANGES])
def test_range_header(header, size, expected):
    if expected == "416":
        with pytest.raises(Unsatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == expected


CONTENT_RANGES = [("0-9", (0, 9)), ("10-19", (10, 19)), ("bytes 0-9/100", (0, 9)),
                  ("bytes=0-9", (0, 9)), ("0-9/*", (0, 9)), ("9-0", None), ("a-b", None),
                  ("0-", None), ("-9", None), ("", None), ("0-" + "9" * 5000, None),
                  ("\u0660-\u0669", None), ("0-9\n/100", None)]


@pytest.mark.parametrize("header,expected", CONTENT_RANGES,
                         ids=[_short(h) for h, _ in CONTENT_RANGES])
def test_content_range(header, expected):
    assert parse_content_range(header) == expected


IF_RANGE = [  # If-Range, expected: the range applies only when If-Range is the blob's ETag
    (None, (0, 9)), ('"sha256:abc"', (0, 9)), (' "sha256:abc" ', (0, 9)), ('"sha256:other"', None),
    ("W/\"sha256:abc\"", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None),
]


@pytest.mark.parametrize("if_range,expected", IF_RANGE)
def test_if_range(if_range, expected):
    assert parse_range("bytes=0-9", 100, if_range=if_range, etag='"sha256:abc"') == expected
