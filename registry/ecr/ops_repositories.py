"""ECR repository operations (reference 2.3, "Repositories" and "Policies")."""

from __future__ import annotations

from typing import Any

from policies import PolicyError, PolicyKind, parse_policy
from registry.ecr import shapes
from registry.ecr.call import ECRCall, repository_not_found
from registry.ecr.errors import (
    InvalidParameterException, InvalidTagParameterException, RepositoryAlreadyExistsException,
    RepositoryNotEmptyException, RepositoryPolicyNotFoundException, TooManyTagsException,
    invalid_parameter,
)
from registry.auth.authorize import parse_repository_arn
from registry.auth.listing import MAX_SKIP, Cursor, visible_page
from registry.ecr import pagination
from registry.metadata.models import (
    RepositoryExistsError, RepositoryNotEmptyError, TooManyTagsError,
)
from registry.metadata.models import Event, Repository, RepositorySettings
from registry.oci.names import is_name



def mutability(params: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    mode = params.get("imageTagMutability") or "MUTABLE"
    filters = params.get("imageTagMutabilityExclusionFilters") or []
    if mode.endswith("_WITH_EXCLUSION") and not filters:
        raise InvalidParameterException(
            f"ImageTagMutabilityExclusionFilters can't be null when imageTagMutability is set "
            f"as {mode}")
    if filters and not mode.endswith("_WITH_EXCLUSION"):
        raise InvalidParameterException(
            f"ImageTagMutabilityExclusionFilters can only be set when imageTagMutability is "
            f"MUTABLE_WITH_EXCLUSION or IMMUTABLE_WITH_EXCLUSION, not {mode}")
    return mode, tuple(f["filter"] for f in filters)


def check_tags(tags: list[dict[str, str]]) -> list[tuple[str, str]]:
    pairs = []
    for tag in tags:
        key, value = tag["Key"], tag["Value"]
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            raise InvalidTagParameterException(f"Invalid tag key: '{key[:140]}'")
        if len(value) > 256:
            raise InvalidTagParameterException(f"Invalid tag value for key '{key}'")
        pairs.append((key, value))
    return pairs


async def create_repository(call: ECRCall) -> dict[str, Any]:
    p = call.params
    name = p["repositoryName"]
    await call.authorize("ecr:CreateRepository", name)
    mode, filters = mutability(p)
    encryption = p.get("encryptionConfiguration") or {}
    settings = RepositorySettings(
        image_tag_mutability=mode, mutability_filters=filters,
        scan_on_push=bool((p.get("imageScanningConfiguration") or {}).get("scanOnPush")),
        encryption_type=encryption.get("encryptionType", "AES256"),
        kms_key=encryption.get("kmsKey"))
    tags = check_tags(p.get("tags") or [])
    try:
        repo = await call.metadata.create_repository(call.account, name, settings, tags)
    except RepositoryExistsError:
        raise RepositoryAlreadyExistsException(
            f"The repository with name '{name}' already exists in the registry with id "
            f"'{call.account}'") from None
    except TooManyTagsError:
        raise TooManyTagsException("A repository can have at most 50 tags") from None
    # The CreateRepository check itself memoised "no such repository, no tags": conditions on
    # aws:ResourceTag must see the new tags from the next request on.
    call.policies_changed()
    return {"repository": shapes.repository(call, repo)}


async def describe_repositories(call: ECRCall) -> dict[str, Any]:
    """Named repositories (each authorized before it is looked up, so a caller who may not
    describe one learns nothing of its existence), or a listing filtered by authorization
    whose ``nextToken`` never names a hidden repository (registry/auth/listing.py)."""
    p = call.params
    names = p.get("repositoryNames")
    if names is not None and ("nextToken" in p or "maxResults" in p):
        raise InvalidParameterException("nextToken and maxResults cannot be used with "
                                        "repositoryNames")
    if names:
        repos = []
        for name in names:
            await call.authorize("ecr:DescribeRepositories", name)
            repos.append(await call.repository(name))
        return {"repositories": [shapes.repository(call, r) for r in repos]}
    cursor = _listing_cursor(p.get("nextToken"))

    async def fetch(position: Cursor, limit: int) -> list[Repository]:
        return await call.metadata.describe_repositories(
            call.account, after=position.after, limit=limit, skip=position.skip)

    async def visible(repo: Repository) -> bool:
        return await call.allowed("ecr:DescribeRepositories", repo.name)

    chunk = await visible_page(fetch, visible, lambda r: r.name, cursor=cursor,
                               limit=p.get("maxResults") or pagination.DEFAULT_PAGE)
    if not chunk.items and chunk.next is None and cursor.is_start:
        # Nothing to show must still be a permitted answer; the denial names the listing's
        # resource, "repository/*", as AWS's does, never a repository the caller cannot see.
        await call.authorize("ecr:DescribeRepositories", "*")
    result: dict[str, Any] = {"repositories": [shapes.repository(call, r)
                                               for r in chunk.items]}
    if chunk.next is not None:
        result["nextToken"] = pagination.encode(
            chunk.next.after if not chunk.next.skip else [chunk.next.after, chunk.next.skip])
    return result


def _listing_cursor(token: str | None) -> Cursor:
    """A DescribeRepositories ``nextToken``: a repository name, or [name or null, skip].

    Raises: InvalidParameterException for anything else.
    """
    position = pagination.decode(token)
    if position is None or isinstance(position, str):
        return Cursor(position)
    if (isinstance(position, list) and len(position) == 2
            and (position[0] is None or isinstance(position[0], str))
            and type(position[1]) is int and 0 <= position[1] <= MAX_SKIP):
        return Cursor(position[0], position[1])
    raise pagination.invalid_token()


async def delete_repository(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:DeleteRepository", name)
    repo = await call.repository(name)
    shape = shapes.repository(call, repo)
    event = Event("repository.deleted", {"account": repo.account, "repository": name})
    try:
        await call.metadata.delete_repository(repo, force=bool(call.params.get("force")),
                                              events=[event])
        call.policies_changed()
    except RepositoryNotEmptyError:
        raise RepositoryNotEmptyException(
            f"The repository with name '{name}' in registry with id '{call.account}' cannot be "
            "deleted because it still contains images") from None
    return {"repository": shape}


async def put_image_tag_mutability(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:PutImageTagMutability", name)
    repo = await call.repository(name)
    mode, filters = mutability(call.params)
    await call.metadata.update_repository(repo.id, image_tag_mutability=mode,
                                          mutability_filters=filters)
    result: dict[str, Any] = {"registryId": repo.account, "repositoryName": name,
                              "imageTagMutability": mode}
    if filters:
        result["imageTagMutabilityExclusionFilters"] = [
            {"filterType": "WILDCARD", "filter": f} for f in filters]
    return result


async def put_image_scanning_configuration(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:PutImageScanningConfiguration", name)
    repo = await call.repository(name)
    scan_on_push = bool(call.params["imageScanningConfiguration"].get("scanOnPush"))
    await call.metadata.update_repository(repo.id, scan_on_push=scan_on_push)
    return {"registryId": repo.account, "repositoryName": name,
            "imageScanningConfiguration": {"scanOnPush": scan_on_push}}


def check_policy_text(text: str, what: str) -> None:
    """Raises: InvalidParameterException naming every problem."""
    try:
        parse_policy(text, kind=PolicyKind.RESOURCE, name=what)
    except PolicyError as exc:
        problems = "; ".join(str(problem) for problem in exc.problems)
        raise invalid_parameter("PolicyText", f"Invalid {what} policy provided: "
                                              f"{problems}") from None


async def set_repository_policy(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:SetRepositoryPolicy", name)
    repo = await call.repository(name)
    text = call.params["policyText"]
    check_policy_text(text, "repository")
    await call.metadata.update_repository(repo.id, policy_text=text)
    call.policies_changed()
    return {"registryId": repo.account, "repositoryName": name, "policyText": text}


def _policy_not_found(name: str, account: str) -> RepositoryPolicyNotFoundException:
    return RepositoryPolicyNotFoundException(
        f"Repository policy does not exist for the repository with name '{name}' in the "
        f"registry with id '{account}'")


async def get_repository_policy(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:GetRepositoryPolicy", name)
    repo = await call.repository(name)
    if repo.policy_text is None:
        raise _policy_not_found(name, repo.account)
    return {"registryId": repo.account, "repositoryName": name, "policyText": repo.policy_text}


async def delete_repository_policy(call: ECRCall) -> dict[str, Any]:
    name = call.params["repositoryName"]
    await call.authorize("ecr:DeleteRepositoryPolicy", name)
    repo = await call.repository(name)
    if repo.policy_text is None:
        raise _policy_not_found(name, repo.account)
    await call.metadata.update_repository(repo.id, policy_text=None)
    call.policies_changed()
    return {"registryId": repo.account, "repositoryName": name, "policyText": repo.policy_text}


async def _repository_from_arn(call: ECRCall, action: str):
    arn = call.params["resourceArn"]
    parsed = parse_repository_arn(arn)
    if parsed is None or parsed[0] != call.config.region or not is_name(parsed[2]):
        raise InvalidParameterException(f"Invalid parameter at 'resourceArn' failed to satisfy "
                                        f"constraint: 'Invalid ARN: {arn[:300]}'")
    _, account, name = parsed
    call.params["registryId"] = account
    await call.authorize(action, name)
    repo = await call.metadata.get_repository(account, name)
    if repo is None:
        raise repository_not_found(name, account)
    return repo


async def tag_resource(call: ECRCall) -> dict[str, Any]:
    repo = await _repository_from_arn(call, "ecr:TagResource")
    try:
        await call.metadata.tag_repository(repo.id, check_tags(call.params["tags"]))
        call.policies_changed()
    except TooManyTagsError:
        raise TooManyTagsException("A repository can have at most 50 tags") from None
    return {}


async def untag_resource(call: ECRCall) -> dict[str, Any]:
    repo = await _repository_from_arn(call, "ecr:UntagResource")
    await call.metadata.untag_repository(repo.id, call.params["tagKeys"])
    call.policies_changed()
    return {}


async def list_tags_for_resource(call: ECRCall) -> dict[str, Any]:
    repo = await _repository_from_arn(call, "ecr:ListTagsForResource")
    tags = await call.metadata.repository_tags(repo.id)
    return {"tags": [{"Key": k, "Value": v} for k, v in tags]}


OPERATIONS = {
    "CreateRepository": create_repository,
    "DescribeRepositories": describe_repositories,
    "DeleteRepository": delete_repository,
    "PutImageTagMutability": put_image_tag_mutability,
    "PutImageScanningConfiguration": put_image_scanning_configuration,
    "SetRepositoryPolicy": set_repository_policy,
    "GetRepositoryPolicy": get_repository_policy,
    "DeleteRepositoryPolicy": delete_repository_policy,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
