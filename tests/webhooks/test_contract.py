"""The webhook wire contract as tables: signatures, outcomes, EventBridge shapes, filters."""

from __future__ import annotations

import hashlib
import hmac
from types import SimpleNamespace

import pytest

from registry.events import LoggedEvent
from scanner.webhooks import (
    Endpoint, Outcome, WebhookSubscriber, classify, eventbridge_events, redact_url,
    repository_matches, sign, verify_signature,
)

SECRET = "s3cret"
BODY = b'{"version":"0"}'
T = 1_700_000_000


# -- signatures -------------------------------------------------------------------------------

def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


VERIFY_CASES = [
    ("valid", sign(SECRET, BODY, T), BODY, T + 10, True),
    ("within tolerance, clock behind", sign(SECRET, BODY, T), BODY, T - 299, True),
    ("stale: replayed after tolerance", sign(SECRET, BODY, T), BODY, T + 301, False),
    ("body tampered", sign(SECRET, BODY, T), BODY + b" ", T, False),
    ("signed with another secret", sign("other", BODY, T), BODY, T, False),
    ("timestamp altered", sign(SECRET, BODY, T).replace(str(T), str(T + 1)), BODY, T, False),
    ("rotation: any v1 may match", f"t={T},v1=00ff,v1={sign(SECRET, BODY, T).split('v1=')[1]}",
     BODY, T, True),
    ("no timestamp", "v1=" + sign(SECRET, BODY, T).split("v1=")[1], BODY, T, False),
    ("no signature", f"t={T}", BODY, T, False),
    ("garbage", "not a header", BODY, T, False),
    ("empty", "", BODY, T, False),
    ("non-numeric timestamp", "t=abc,v1=00", BODY, T, False),
]


@pytest.mark.parametrize("why, header, body, now, valid", VERIFY_CASES,
                         ids=[c[0] for c in VERIFY_CASES])
def test_verify_signature(why, header, body, now, valid):
    assert verify_signature(SECRET, header, body, tolerance=300, now=now) is valid


# -- outcomes ---------------------------------------------------------------------------------

OUTCOMES = [
    (200, Outcome.DELIVERED), (201, Outcome.DELIVERED), (204, Outcome.DELIVERED),
    (301, Outcome.RETRY), (302, Outcome.RETRY),  # redirects are not followed
    (400, Outcome.PERMANENT), (401, Outcome.PERMANENT), (403, Outcome.PERMANENT),
    (404, Outcome.PERMANENT), (410, Outcome.PERMANENT), (422, Outcome.PERMANENT),
    (408, Outcome.RETRY), (429, Outcome.RETRY),  # the receiver asks us to come back
    (500, Outcome.RETRY), (502, Outcome.RETRY), (503, Outcome.RETRY),
    (None, Outcome.RETRY),  # network error or timeout
]


@pytest.mark.parametrize("status, outcome", OUTCOMES, ids=[str(s) for s, _ in OUTCOMES])
def test_classify(status, outcome):
    assert classify(status) is outcome


# -- EventBridge shapes (ecr-api.md §10) ------------------------------------------------------

def render(kind, payload):
    counter = iter(range(100))
    return eventbridge_events(LoggedEvent(1, kind, {"account": "123456789012", **payload},
                                          1573869274.0),
                              region="us-west-2", new_id=lambda: f"id-{next(counter)}")


def test_push_matches_the_aws_documentation_example():
    [event] = render("image.pushed", {"repository": "my-repository-name",
                                      "digest": "sha256:7f5b", "tags": ["latest"]})
    assert event == {
        "version": "0", "id": "id-0", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": "2019-11-16T01:54:34Z", "region": "us-west-2",
        "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "my-repository-name",
                   "image-digest": "sha256:7f5b", "action-type": "PUSH",
                   "image-tag": "latest"}}


SHAPES = [
    ("push by digest has no image-tag", "image.pushed",
     {"repository": "r", "digest": "sha256:aa", "tags": []},
     [{"result": "SUCCESS", "repository-name": "r", "image-digest": "sha256:aa",
       "action-type": "PUSH"}]),
    ("push with two tags is two events", "image.pushed",
     {"repository": "r", "digest": "sha256:aa", "tags": ["a", "b"]},
     [{"result": "SUCCESS", "repository-name": "r", "image-digest": "sha256:aa",
       "action-type": "PUSH", "image-tag": t} for t in ("a", "b")]),
    ("delete by tag", "image.deleted", {"repository": "r", "digest": "sha256:aa", "tag": "v1"},
     [{"result": "SUCCESS", "repository-name": "r", "image-digest": "sha256:aa",
       "action-type": "DELETE", "image-tag": "v1"}]),
    ("delete by digest", "image.deleted", {"repository": "r", "digest": "sha256:aa"},
     [{"result": "SUCCESS", "repository-name": "r", "image-digest": "sha256:aa",
       "action-type": "DELETE"}]),
    ("scan complete: only non-zero severities", "image.scanned",
     {"repository": "r", "digest": "sha256:aa", "tags": ["v1"], "status": "COMPLETE",
      "severityCounts": {"CRITICAL": 10, "HIGH": 0, "MEDIUM": 9}},
     [{"scan-status": "COMPLETE", "repository-name": "r",
       "finding-severity-counts": {"CRITICAL": 10, "MEDIUM": 9}, "image-digest": "sha256:aa",
       "image-tags": ["v1"]}]),
    ("scan failed: no counts", "image.scanned",
     {"repository": "r", "digest": "sha256:aa", "tags": [], "status": "FAILED"},
     [{"scan-status": "FAILED", "repository-name": "r", "image-digest": "sha256:aa",
       "image-tags": []}]),
    ("repository deleted: ECR emits no image event", "repository.deleted", {"repository": "r"},
     []),
]


@pytest.mark.parametrize("why, kind, payload, details", SHAPES, ids=[s[0] for s in SHAPES])
def test_eventbridge_details(why, kind, payload, details):
    events = render(kind, payload)
    assert [e["detail"] for e in events] == details
    assert len({e["id"] for e in events}) == len(events)


def test_scan_events_name_the_repository_arn():
    [event] = render("image.scanned", {"repository": "team/app", "digest": "sha256:aa",
                                       "tags": [], "status": "COMPLETE", "severityCounts": {}})
    assert event["detail-type"] == "ECR Image Scan"
    assert event["resources"] == ["arn:aws:ecr:us-west-2:123456789012:repository/team/app"]
    assert event["detail"]["finding-severity-counts"] == {}


# -- filters and endpoints --------------------------------------------------------------------

FILTERS = [
    (["*"], "anything/at/all", True),
    (["prod"], "prod", True),
    (["prod"], "repo-prod", False),  # anchored, unlike scan filters' "contains"
    (["*prod"], "repo-prod", True),
    (["*prod"], "prod-repo", False),
    (["prod*"], "prod-repo", True),
    (["team/*"], "team/app", True),
    (["team/*"], "other/team/app", False),
    (["a.b"], "axb", False),  # only * is special
    (["x", "team/*"], "team/app", True),
    ([], "team/app", False),
]


@pytest.mark.parametrize("filters, name, matches", FILTERS)
def test_repository_filters(filters, name, matches):
    assert repository_matches(filters, name) is matches


def test_endpoint_from_config_reads_the_secret_file_and_hides_secrets(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    entry = SimpleNamespace(url="https://hooks.example/x?token=t0k", name="", secret="",
                            secret_file=str(secret_file), events=["ECR Image Scan"],
                            repositories=["team/*"], timeout_seconds=3)
    hook = Endpoint.from_config(entry)
    assert hook.secret == "from-file" and hook.name == "https://hooks.example/x"
    assert hook.events == {"ECR Image Scan"} and hook.timeout == 3.0
    assert "from-file" not in repr(hook) and "t0k" not in repr(hook)
    with pytest.raises(ValueError):
        Endpoint.from_config(SimpleNamespace(url="https://h/x", secret="",
                                             secret_file=str(tmp_path / "missing")))


def test_subscriber_renders_once_and_addresses_each_matching_endpoint():
    hooks = [Endpoint("a", "http://a", "s"), Endpoint("b", "http://b", "s",
                                                       repositories=("other/*",))]
    jobs = WebhookSubscriber(hooks, region="us-east-1")(LoggedEvent(
        7, "image.pushed", {"account": "123456789012", "repository": "team/app",
                            "digest": "sha256:aa", "tags": ["v1"]}, 0.0))
    assert [(j.kind, j.payload["endpoint"]) for j in jobs] == [("webhook.deliver", "a")]
    assert jobs[0].payload["event"]["detail"]["image-tag"] == "v1"
    assert "s" not in jobs[0].payload.values()  # secrets stay out of the database


@pytest.mark.parametrize("url, shown", [
    ("https://user:pw@hooks.example:8443/p/a?token=x#f", "https://hooks.example:8443/p/a"),
    ("http://[::1]:9000/h", "http://[::1]:9000/h"),
    ("http://127.0.0.1/h", "http://127.0.0.1/h"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_endpoint_names_must_be_unique():
    from scanner.webhooks import WebhookDeliverer

    twins = [Endpoint("ci", "http://a", "s"), Endpoint("ci", "http://b", "s")]
    with pytest.raises(ValueError):
        WebhookDeliverer(iter(twins), deliveries=None)
