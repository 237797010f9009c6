"""ECR image semantics through boto3: PutImage, BatchGetImage, BatchDeleteImage, ListImages,
DescribeImages and the layer data plane (reference §3)."""

from __future__ import annotations

import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from tests.support.images import Image, random_layer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def error(excinfo) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def upload_layer(ecr, repo: str, data: bytes, part_size: int = 5 * 1024 * 1024) -> str:
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    for first in range(0, len(data), part_size):
        part = data[first:first + part_size]
        result = ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id,
                                       partFirstByte=first, partLastByte=first + len(part) - 1,
                                       layerPartBlob=part)
        assert result["lastByteReceived"] == first + len(part) - 1
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id,
                                     layerDigests=[digest])
    assert done["layerDigest"] == digest
    return digest


def push_image(ecr, repo: str, tag: str | None, seed: str) -> Image:
    image = Image.build([random_layer(f"{seed}-a", 3000), random_layer(f"{seed}-b", 2000)])
    for blob in image.blobs():
        upload_layer(ecr, repo, blob.data)
    kwargs = {"imageTag": tag} if tag else {}
    result = ecr.put_image(repositoryName=repo, imageManifest=image.manifest.data.decode(),
                           imageManifestMediaType=OCI_MANIFEST, **kwargs)["image"]
    assert result["imageId"]["imageDigest"] == image.digest
    return image


@pytest.fixture
def repo(ecr, name):
    ecr.create_repository(repositoryName=name)
    return name


def test_put_get_list_describe(ecr, repo):
    one = push_image(ecr, repo, "v1", "one")
    two = push_image(ecr, repo, None, "two")
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[
        {"imageTag": "v1"}, {"imageDigest": two.digest}, {"imageTag": "nope"},
        {"imageDigest": "sha256:zz"}, {}])
    assert [i["imageManifest"].encode() for i in got["images"]] == [one.manifest.data,
                                                                   two.manifest.data]
    assert [f["failureCode"] for f in got["failures"]] == [
        "ImageNotFound", "InvalidImageDigest", "MissingDigestAndTag"]
    listed = ecr.list_images(repositoryName=repo)["imageIds"]
    assert {"imageDigest": one.digest, "imageTag": "v1"} in listed
    assert {"imageDigest": two.digest} in listed
    tagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert tagged == [{"imageDigest": one.digest, "imageTag": "v1"}]
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert untagged == [{"imageDigest": two.digest}]
    details = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    detail = details["imageDetails"][0]
    assert detail["imageDigest"] == one.digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == one.config.size + sum(l.size for l in one.layers)
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    assert detail["artifactMediaType"] == "application/vnd.oci.image.config.v1+json"
    assert detail["imagePushedAt"].year >= 2024
    assert "lastRecordedPullTime" in detail  # BatchGetImage above recorded a pull
    with pytest.raises(ClientError) as excinfo:
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "missing"}])
    assert error(excinfo) == ("ImageNotFoundException",
                              "The image with imageId {imageDigest:'null', imageTag:'missing'} "
                              f"does not exist within the repository with name '{repo}' in the "
                              "registry with id '000000000000'")


def test_same_manifest_and_tag_again_is_image_already_exists(ecr, repo):
    image = push_image(ecr, repo, "v1", "again")
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=repo, imageManifest=image.manifest.data.decode(),
                      imageTag="v1")
    assert error(excinfo)[0] == "ImageAlreadyExistsException"
    # A new tag for the same manifest is fine.
    ecr.put_image(repositoryName=repo, imageManifest=image.manifest.data.decode(),
                  imageTag="v2")


@pytest.mark.parametrize("mode,filters,tag,moves", [
    ("MUTABLE", None, "latest", True),
    ("IMMUTABLE", None, "latest", False),
    ("IMMUTABLE_WITH_EXCLUSION", ["dev-*"], "dev-1", True),
    ("IMMUTABLE_WITH_EXCLUSION", ["dev-*"], "prod-1", False),
    ("MUTABLE_WITH_EXCLUSION", ["release-*"], "release-1", False),
    ("MUTABLE_WITH_EXCLUSION", ["release-*"], "snapshot", True),
])
def test_tag_mutability(ecr, name, mode, filters, tag, moves):
    extra = {"imageTagMutabilityExclusionFilters": [
        {"filterType": "WILDCARD", "filter": f} for f in filters]} if filters else {}
    ecr.create_repository(repositoryName=name, imageTagMutability=mode, **extra)
    first = push_image(ecr, name, tag, "first")
    second = Image.build([random_layer("second", 100)])
    for blob in second.blobs():
        upload_layer(ecr, name, blob.data)
    call = dict(repositoryName=name, imageManifest=second.manifest.data.decode(), imageTag=tag)
    if moves:
        ecr.put_image(**call)
        expected = second.digest
    else:
        with pytest.raises(ClientError) as excinfo:
            ecr.put_image(**call)
        assert error(excinfo) == ("ImageTagAlreadyExistsException",
                                  f"The image tag '{tag}' already exists in the '{name}' "
                                  "repository and cannot be overwritten because the repository "
                                  "is immutable.")
        expected = first.digest
    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": tag}])["images"]
    assert got[0]["imageId"]["imageDigest"] == expected


def test_delete_by_tag_and_by_digest(ecr, repo):
    image = push_image(ecr, repo, "v1", "del")
    ecr.put_image(repositoryName=repo, imageManifest=image.manifest.data.decode(),
                  imageTag="v2")
    deleted = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert deleted["imageIds"] == [{"imageDigest": image.digest, "imageTag": "v1"}]
    assert ecr.list_images(repositoryName=repo)["imageIds"] == [
        {"imageDigest": image.digest, "imageTag": "v2"}]
    deleted = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": image.digest},
                                                                     {"imageTag": "gone"}])
    assert deleted["imageIds"] == [{"imageDigest": image.digest, "imageTag": "v2"}]
    assert deleted["failures"][0]["failureCode"] == "ImageNotFound"
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []


def test_put_image_errors(ecr, repo):
    image = Image.build([random_layer("missing-layer", 100)])
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=repo, imageManifest=image.manifest.data.decode(),
                      imageTag="v1")
    assert error(excinfo)[0] == "LayersNotFoundException"
    for blob in image.blobs():
        upload_layer(ecr, repo, blob.data)
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=repo, imageManifest=image.manifest.data.decode(),
                      imageDigest="sha256:" + "0" * 64)
    assert error(excinfo)[0] == "ImageDigestDoesNotMatchException"
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": OCI_MANIFEST, "size": 10,
                                       "digest": "sha256:" + "1" * 64}]})
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=repo, imageManifest=index, imageTag="idx")
    assert error(excinfo)[0] == "ReferencedImagesNotFoundException"
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=repo, imageManifest="{not json", imageTag="bad")
    assert error(excinfo)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=f"{repo}-absent", imageManifest=image.manifest.data.decode())
    assert error(excinfo)[0] == "RepositoryNotFoundException"
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []


def test_layer_data_plane_errors(ecr, repo):
    data = b"x" * 100
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                          partLastByte=49, layerPartBlob=data[:50])
    with pytest.raises(ClientError) as excinfo:
        ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=60,
                              partLastByte=109, layerPartBlob=data[:50])
    assert error(excinfo)[0] == "InvalidLayerPartException"
    with pytest.raises(ClientError) as excinfo:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id,
                                  layerDigests=["sha256:" + "2" * 64])
    assert error(excinfo)[0] == "InvalidLayerException"
    with pytest.raises(ClientError) as excinfo:
        ecr.upload_layer_part(repositoryName=repo, uploadId="00000000-0000-0000-0000-000000000000",
                              partFirstByte=0, partLastByte=0, layerPartBlob=b"x")
    assert error(excinfo)[0] == "UploadNotFoundException"
    empty = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ClientError) as excinfo:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=empty,
                                  layerDigests=["sha256:" + hashlib.sha256(b"").hexdigest()])
    assert error(excinfo)[0] == "EmptyUploadException"
    digest = upload_layer(ecr, repo, b"present")
    checked = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[
        digest, "sha256:" + "3" * 64])
    assert checked["layers"][0]["layerAvailability"] == "AVAILABLE"
    assert checked["layers"][0]["layerSize"] == 7
    assert checked["failures"][0]["failureCode"] == "MissingLayerDigest"
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)["downloadUrl"]
    assert url.endswith(f"/v2/{repo}/blobs/{digest}")
    with pytest.raises(ClientError) as excinfo:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest="sha256:" + "4" * 64)
    assert error(excinfo)[0] == "LayersNotFoundException"


def test_paginators_for_images(ecr, repo):
    images = [push_image(ecr, repo, f"t{i}", f"page{i}") for i in range(5)]
    listed = [i for page in ecr.get_paginator("list_images").paginate(
        repositoryName=repo, PaginationConfig={"PageSize": 2}) for i in page["imageIds"]]
    assert sorted(i["imageTag"] for i in listed) == [f"t{i}" for i in range(5)]
    described = [d for page in ecr.get_paginator("describe_images").paginate(
        repositoryName=repo, PaginationConfig={"PageSize": 2}) for d in page["imageDetails"]]
    assert sorted(d["imageDigest"] for d in described) == sorted(i.digest for i in images)


def test_delete_repository_force(ecr, repo):
    push_image(ecr, repo, "v1", "force")
    with pytest.raises(ClientError) as excinfo:
        ecr.delete_repository(repositoryName=repo)
    assert error(excinfo)[0] == "RepositoryNotEmptyException"
    ecr.delete_repository(repositoryName=repo, force=True)
    with pytest.raises(ClientError):
        ecr.describe_repositories(repositoryNames=[repo])


@pytest.mark.parametrize("operation", ["list_images", "describe_images"])
def test_a_token_of_the_other_listing_is_an_invalid_parameter(ecr, repo, operation):
    """ListImages positions are [digest, tag], DescribeImages positions digests: a token that
    does not fit the listing is refused, never a crash or a silent restart."""
    for i in range(3):
        push_image(ecr, repo, f"t{i}", f"tok{i}")
    other = "describe_images" if operation == "list_images" else "list_images"
    token = getattr(ecr, other)(repositoryName=repo, maxResults=1)["nextToken"]
    with pytest.raises(ClientError) as excinfo:
        getattr(ecr, operation)(repositoryName=repo, maxResults=1, nextToken=token)
    assert error(excinfo)[0] == "InvalidParameterException"


def test_list_images_pages_untagged_and_tagged_entries_in_one_order(ecr, repo):
    """ANY lists (digest, tag) pairs by digest then tag, an untagged image once; pages of
    one concatenate to the whole listing."""
    push_image(ecr, repo, "b", "order1")
    push_image(ecr, repo, None, "order2")
    whole = ecr.list_images(repositoryName=repo)["imageIds"]
    paged, token = [], None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = ecr.list_images(repositoryName=repo, maxResults=1, **kwargs)
        paged += page["imageIds"]
        token = page.get("nextToken")
        if not token:
            break
    assert paged == whole
    assert sorted((i["imageDigest"], i.get("imageTag", "")) for i in whole) == \
        [(i["imageDigest"], i.get("imageTag", "")) for i in whole]
