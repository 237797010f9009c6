"""What every tag needs, from a metadata snapshot: closures, affected names, missing pieces.

A tag's closure is its manifest, and for an index the child manifests, recursively, plus
every config and layer blob those manifests reference, all within the tag's repository (a
blob is readable in a repository only through that repository's link).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterator

from registry.metadata.integrity import RegistrySnapshot


FILE_MISSING = "recorded, but its file is missing"


@dataclass
class Usage:
    repositories: set[str] = field(default_factory=set)  # "account/name"
    tags: set[str] = field(default_factory=set)  # "account/name:tag"


def _walk(snap: RegistrySnapshot, repo_id: int,
          root: str) -> Iterator[tuple[str, str]]:
    """Yield (digest, kind) of everything a manifest needs, the manifest first."""
    seen: set[str] = set()
    stack = [(root, "manifest")]
    while stack:
        digest, kind = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        yield digest, kind
        if kind == "manifest":
            stack.extend(snap.references.get((repo_id, digest), ()))


def usage(snap: RegistrySnapshot) -> dict[str, Usage]:
    """For every digest: the repositories holding it and the tags whose closure needs it."""
    result: dict[str, Usage] = defaultdict(Usage)
    for repo_id, digest in snap.links | snap.manifests:
        result[digest].repositories.add(snap.repositories[repo_id])
    for repo_id, tag, root in snap.tags:
        name = snap.repositories[repo_id]
        for digest, _ in _walk(snap, repo_id, root):
            result[digest].repositories.add(name)
            result[digest].tags.add(f"{name}:{tag}")
    return result


def missing(snap: RegistrySnapshot, has_file: Callable[[str], bool]) -> dict[str, str]:
    """Digests a tag needs, or the database records, that cannot be served; with why."""
    found: dict[str, str] = {}
    for digest in snap.blobs:
        if not has_file(digest):
            found[digest] = FILE_MISSING
    for repo_id, _, root in snap.tags:
        for digest, kind in _walk(snap, repo_id, root):
            if digest in found:
                continue
            if kind == "manifest" and (repo_id, digest) not in snap.manifests:
                found[digest] = "a manifest an index needs is not in the repository"
            elif kind != "manifest" and (repo_id, digest) not in snap.links:
                found[digest] = "a blob a manifest needs is not linked in the repository"
            elif digest not in snap.blobs:
                found[digest] = "needed, but not recorded as a blob"
    return found
