"""The repository lifecycle through boto3, as a user of ECR would drive it."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError


def error(excinfo) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def test_create_describe_delete(ecr, name):
    created = ecr.create_repository(
        repositoryName=name, tags=[{"Key": "team", "Value": "core"}],
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}],
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "alias/mine"})["repository"]
    assert created["repositoryName"] == name
    assert created["registryId"] == "000000000000"
    assert created["repositoryArn"] == f"arn:aws:ecr:us-east-1:000000000000:repository/{name}"
    assert created["repositoryUri"].endswith(f"/{name}")
    assert created["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert created["imageTagMutabilityExclusionFilters"] == [
        {"filterType": "WILDCARD", "filter": "dev-*"}]
    assert created["imageScanningConfiguration"] == {"scanOnPush": True}
    assert created["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": "alias/mine"}
    assert created["createdAt"].year >= 2024  # epoch seconds parsed by botocore

    described = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert described == [created]
    tags = ecr.list_tags_for_resource(resourceArn=created["repositoryArn"])["tags"]
    assert tags == [{"Key": "team", "Value": "core"}]

    deleted = ecr.delete_repository(repositoryName=name)["repository"]
    assert deleted["repositoryName"] == name
    with pytest.raises(ClientError) as excinfo:
        ecr.describe_repositories(repositoryNames=[name])
    assert error(excinfo) == ("RepositoryNotFoundException",
                              f"The repository with name '{name}' does not exist in the "
                              "registry with id '000000000000'")


def test_all_four_mutability_modes_round_trip(ecr, name):
    for i, mode in enumerate(["MUTABLE", "IMMUTABLE", "MUTABLE_WITH_EXCLUSION",
                              "IMMUTABLE_WITH_EXCLUSION"]):
        extra = {}
        if mode.endswith("EXCLUSION"):
            extra["imageTagMutabilityExclusionFilters"] = [
                {"filterType": "WILDCARD", "filter": "latest"}]
        repo = ecr.create_repository(repositoryName=f"{name}-{i}", imageTagMutability=mode,
                                     **extra)["repository"]
        assert repo["imageTagMutability"] == mode
        put = ecr.put_image_tag_mutability(repositoryName=f"{name}-{i}",
                                           imageTagMutability="MUTABLE")
        assert put["imageTagMutability"] == "MUTABLE"


def test_duplicate_and_missing(ecr, name):
    ecr.create_repository(repositoryName=name)
    with pytest.raises(ClientError) as excinfo:
        ecr.create_repository(repositoryName=name)
    assert error(excinfo)[0] == "RepositoryAlreadyExistsException"
    with pytest.raises(ClientError) as excinfo:
        ecr.delete_repository(repositoryName=f"{name}-missing")
    assert error(excinfo)[0] == "RepositoryNotFoundException"


def test_paginators(ecr, name):
    names = [f"{name}/r{i:02d}" for i in range(7)]
    for n in names:
        ecr.create_repository(repositoryName=n)
    paginator = ecr.get_paginator("describe_repositories")
    seen = [r["repositoryName"] for page in paginator.paginate(PaginationConfig={"PageSize": 3})
            for r in page["repositories"]]
    assert [n for n in seen if n.startswith(name)] == names
    first = ecr.describe_repositories(maxResults=2)
    assert len(first["repositories"]) == 2 and first["nextToken"]


def test_tags_resource_operations(ecr, name):
    arn = ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "1"},
                                            {"Key": "b", "Value": "2"}])
    ecr.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(ClientError) as excinfo:
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": f"k{i}", "Value": "v"}
                                                for i in range(60)])
    assert error(excinfo)[0] == "TooManyTagsException"
    with pytest.raises(ClientError) as excinfo:
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": "aws:reserved", "Value": "v"}])
    assert error(excinfo)[0] == "InvalidTagParameterException"
    with pytest.raises(ClientError) as excinfo:
        ecr.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")
    assert error(excinfo)[0] == "InvalidParameterException"


def test_scanning_configuration(ecr, name):
    ecr.create_repository(repositoryName=name)
    result = ecr.put_image_scanning_configuration(
        repositoryName=name, imageScanningConfiguration={"scanOnPush": True})
    assert result["imageScanningConfiguration"] == {"scanOnPush": True}
    repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}


POLICY = {"Version": "2008-10-17", "Statement": [{
    "Sid": "pull", "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}


def test_repository_policy(ecr, name):
    ecr.create_repository(repositoryName=name)
    with pytest.raises(ClientError) as excinfo:
        ecr.get_repository_policy(repositoryName=name)
    assert error(excinfo)[0] == "RepositoryPolicyNotFoundException"
    text = json.dumps(POLICY)
    assert ecr.set_repository_policy(repositoryName=name, policyText=text)["policyText"] == text
    assert ecr.get_repository_policy(repositoryName=name)["policyText"] == text
    with pytest.raises(ClientError) as excinfo:
        ecr.set_repository_policy(repositoryName=name, policyText='{"Statement": "nope"}')
    code, message = error(excinfo)
    assert code == "InvalidParameterException"
    assert "Invalid repository policy provided" in message
    assert ecr.get_repository_policy(repositoryName=name)["policyText"] == text  # unchanged
    assert ecr.delete_repository_policy(repositoryName=name)["policyText"] == text
    with pytest.raises(ClientError):
        ecr.delete_repository_policy(repositoryName=name)


def test_registry_policy_and_describe_registry(ecr):
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "repl", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
        "Resource": "arn:aws:ecr:us-east-1:000000000000:repository/*"}]}
    text = json.dumps(policy)
    assert ecr.put_registry_policy(policyText=text)["policyText"] == text
    assert ecr.get_registry_policy()["policyText"] == text
    assert ecr.describe_registry()["registryId"] == "000000000000"
    assert ecr.delete_registry_policy()["policyText"] == text
    with pytest.raises(ClientError) as excinfo:
        ecr.get_registry_policy()
    assert error(excinfo)[0] == "RegistryPolicyNotFoundException"


def test_account_settings(ecr):
    default = ecr.get_account_setting(name="BLOB_MOUNTING")
    assert (default["name"], default["value"]) == ("BLOB_MOUNTING", "DISABLED")
    result = ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
    assert (result["name"], result["value"]) == ("BLOB_MOUNTING", "ENABLED")
    got = ecr.get_account_setting(name="BLOB_MOUNTING")
    assert (got["name"], got["value"]) == ("BLOB_MOUNTING", "ENABLED")
    ecr.put_account_setting(name="BLOB_MOUNTING", value="DISABLED")
    with pytest.raises(ClientError) as excinfo:
        ecr.put_account_setting(name="BLOB_MOUNTING", value="MAYBE")
    assert error(excinfo)[0] == "ValidationException"


BAD_INPUT = [
    ("create_repository", {"repositoryName": "UPPER"}, "InvalidParameterException",
     "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy "
     "regular expression '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)"
     "[a-z0-9]+)*)*''"),
    ("create_repository", {"repositoryName": "x" * 257}, "InvalidParameterException",
     "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'Member must have "
     "length less than or equal to 256'"),
    ("create_repository", {"repositoryName": "ok-name", "imageTagMutability": "SOMETIMES"},
     "InvalidParameterException", "Invalid parameter at 'imageTagMutability' failed to satisfy "
     "constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE, "
     "IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]'"),
    ("create_repository", {"repositoryName": "ok-name",
                           "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"},
     "InvalidParameterException", "ImageTagMutabilityExclusionFilters can't be null when "
     "imageTagMutability is set as IMMUTABLE_WITH_EXCLUSION"),
    ("create_repository", {"repositoryName": "ok-name", "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
                           "imageTagMutabilityExclusionFilters": [
                               {"filterType": "WILDCARD", "filter": "bad filter!"}]},
     "InvalidParameterException", None),
    ("describe_repositories", {"maxResults": 1001}, "InvalidParameterException",
     "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value "
     "less than or equal to 1000'"),
    ("describe_repositories", {"maxResults": 5, "repositoryNames": ["a-b"]},
     "InvalidParameterException", None),
    ("describe_repositories", {"nextToken": "garbage!!"}, "InvalidParameterException", None),
    ("create_repository", {"repositoryName": "ok-name", "registryId": "12345"},
     "InvalidParameterException", None),
    ("create_repository", {"repositoryName": "ok-name",
                           "encryptionConfiguration": {"encryptionType": "ROT13"}},
     "InvalidParameterException", None),
    ("get_account_setting", {"name": "NOPE"}, "InvalidParameterException", None),
]


@pytest.mark.parametrize("operation,params,code,message", BAD_INPUT,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_INPUT)])
def test_bad_input_changes_nothing(ecr, operation, params, code, message):
    before = ecr.describe_repositories()["repositories"]
    with pytest.raises(ClientError) as excinfo:
        getattr(ecr, operation)(**params)
    got_code, got_message = error(excinfo)
    assert got_code == code
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert excinfo.value.response["ResponseMetadata"]["RequestId"]
    if message is not None:
        assert got_message == message
    assert ecr.describe_repositories()["repositories"] == before
