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


RANGES = [  # header, size, expected (first, last) | None (whole) | "416"
    (None, 100, None), ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)), ("bytes=-1000", 100, (0, 99)), ("bytes=50-1000", 100, (50, 99)),
    ("bytes=100-200", 100, "416"), ("bytes=10-5", 100, "416"), ("bytes=-0", 100, "416"),
    ("bytes=0-0", 0, "416"), ("bytes=0-1,5-6", 100, None), ("items=0-1", 100, None),
    ("bytes=a-b", 100, None), ("bytes=-", 100, None),
]


@pytest.mark.parametrize("header,size,expected", RANGES)
def test_range_header(header, size, expected):
    if expected == "416":
        with pytest.raises(Unsatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == expected


CONTENT_RANGES = [("0-9", (0, 9)), ("10-19", (10, 19)), ("bytes 0-9/100", (0, 9)),
                  ("bytes=0-9", (0, 9)), ("0-9/*", (0, 9)), ("9-0", None), ("a-b", None),
                  ("0-", None), ("-9", None), ("", None)]


@pytest.mark.parametrize("header,expected", CONTENT_RANGES)
def test_content_range(header, expected):
    assert parse_content_range(header) == expected
