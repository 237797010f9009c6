"""ECR's scanning configuration API and scan requests (ecr-api.md §9), through boto3."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.ecr.test_images import push_image


def error(excinfo) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


@pytest.fixture
def restore_scanning(ecr):
    yield
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[])


def test_registry_scanning_configuration_round_trip(ecr, restore_scanning):
    assert ecr.get_registry_scanning_configuration()["scanningConfiguration"] == {
        "scanType": "BASIC", "rules": []}
    rules = [{"scanFrequency": "CONTINUOUS_SCAN",
              "repositoryFilters": [{"filter": "prod*", "filterType": "WILDCARD"}]},
             {"scanFrequency": "SCAN_ON_PUSH",
              "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}]
    put = ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=rules)
    assert put["registryScanningConfiguration"] == {"scanType": "ENHANCED", "rules": rules}
    got = ecr.get_registry_scanning_configuration()
    assert got["registryId"] == "000000000000"
    assert got["scanningConfiguration"] == {"scanType": "ENHANCED", "rules": rules}


def test_batch_get_repository_scanning_configuration(ecr, name, restore_scanning):
    ecr.create_repository(repositoryName=f"{name}-prod")
    ecr.create_repository(repositoryName=f"{name}-dev")
    ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[
        {"scanFrequency": "CONTINUOUS_SCAN",
         "repositoryFilters": [{"filter": "*prod", "filterType": "WILDCARD"}]},
        {"scanFrequency": "SCAN_ON_PUSH",
         "repositoryFilters": [{"filter": "dev", "filterType": "WILDCARD"}]}])
    result = ecr.batch_get_repository_scanning_configuration(
        repositoryNames=[f"{name}-prod", f"{name}-dev", f"{name}-absent"])
    by_name = {c["repositoryName"]: c for c in result["scanningConfigurations"]}
    assert by_name[f"{name}-prod"]["scanFrequency"] == "CONTINUOUS_SCAN"
    assert by_name[f"{name}-prod"]["appliedScanFilters"] == [
        {"filter": "*prod", "filterType": "WILDCARD"}]
    assert by_name[f"{name}-dev"]["scanFrequency"] == "SCAN_ON_PUSH"
    assert by_name[f"{name}-dev"]["scanOnPush"] is True
    assert result["failures"] == [{"repositoryName": f"{name}-absent",
                                   "failureCode": "REPOSITORY_NOT_FOUND",
                                   "failureReason": "REPOSITORY_NOT_FOUND"}]


BAD_CONFIGURATIONS = [
    ({"scanType": "BASIC", "rules": [{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [
        {"filter": "x", "filterType": "WILDCARD"}]}]}, "ValidationException"),
    ({"scanType": "BASIC", "rules": [{"scanFrequency": "HOURLY", "repositoryFilters": [
        {"filter": "x", "filterType": "WILDCARD"}]}]}, "InvalidParameterException"),
    ({"scanType": "BASIC", "rules": [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [
        {"filter": "Bad Filter!", "filterType": "WILDCARD"}]}]}, "InvalidParameterException"),
    ({"scanType": "SOMETIMES", "rules": []}, "InvalidParameterException"),
    ({"scanType": "ENHANCED", "rules": [
        {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "a", "filterType": "WILDCARD"}]},
        {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "b", "filterType": "WILDCARD"}]}]},
     "InvalidParameterException"),
]


@pytest.mark.parametrize("params,code", BAD_CONFIGURATIONS)
def test_invalid_scanning_configuration_changes_nothing(ecr, params, code):
    before = ecr.get_registry_scanning_configuration()["scanningConfiguration"]
    with pytest.raises(ClientError) as excinfo:
        ecr.put_registry_scanning_configuration(**params)
    assert error(excinfo)[0] == code
    assert ecr.get_registry_scanning_configuration()["scanningConfiguration"] == before


def test_start_image_scan_rules(ecr, name):
    ecr.create_repository(repositoryName=name)
    with pytest.raises(ClientError) as excinfo:
        ecr.start_image_scan(repositoryName=name, imageId={"imageTag": "missing"})
    assert error(excinfo)[0] == "ImageNotFoundException"
    image = push_image(ecr, name, "v1", "scan-rules")
    with pytest.raises(ClientError) as excinfo:
        ecr.describe_image_scan_findings(repositoryName=name, imageId={"imageTag": "v1"})
    assert error(excinfo)[0] == "ScanNotFoundException"
    started = ecr.start_image_scan(repositoryName=name, imageId={"imageTag": "v1"})
    assert started["imageScanStatus"]["status"] == "IN_PROGRESS"
    assert started["imageId"] == {"imageDigest": image.digest, "imageTag": "v1"}
    status = ecr.describe_image_scan_findings(repositoryName=name, imageId={"imageTag": "v1"})
    assert status["imageScanStatus"]["status"] in ("IN_PROGRESS", "COMPLETE", "FAILED",
                                                   "UNSUPPORTED_IMAGE")
    with pytest.raises(ClientError) as excinfo:
        ecr.start_image_scan(repositoryName=name, imageId={"imageDigest": image.digest})
    assert error(excinfo) == ("LimitExceededException",
                              "The scan quota per image has been exceeded. Wait and try again.")
