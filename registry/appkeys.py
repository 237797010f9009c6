"""The application's keys: every shared object the app factory wires, declared once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from registry.auth.authorize import Authorizer
    from registry.blobcache import BlobCache
    from registry.config import Config
    from registry.metadata.store import SQLMetadataStore
    from registry.metrics import Metrics
    from registry.storage.base import BlobStore

CONFIG: web.AppKey["Config"] = web.AppKey("config")
BLOBS: web.AppKey["BlobStore"] = web.AppKey("blobs")
METADATA: web.AppKey["SQLMetadataStore"] = web.AppKey("metadata")
AUTHORIZER: web.AppKey["Authorizer"] = web.AppKey("authorizer")
BLOB_CACHE: web.AppKey["BlobCache"] = web.AppKey("blob_cache")
METRICS: web.AppKey["Metrics"] = web.AppKey("metrics")
BACKGROUND: web.AppKey[list[Any]] = web.AppKey("background")
AUTHENTICATOR: web.AppKey[Any] = web.AppKey("authenticator")
TOKENS: web.AppKey[Any] = web.AppKey("tokens")
IDENTITIES: web.AppKey[Any] = web.AppKey("identities")
PULL_PROTECTION: web.AppKey[Any] = web.AppKey("pull_protection")
# Callables run after a request queued background jobs (the scanner wakes its worker).
JOBS_QUEUED: web.AppKey[list[Any]] = web.AppKey("jobs_queued")
UPLOAD_ACTIVITY: web.AppKey[Any] = web.AppKey("upload_activity")
# This process as a node of the cluster (registry.events.Node): the owner of its leases.
NODE: web.AppKey[Any] = web.AppKey("node")
