"""The metadata store protocol: everything Berth persists, as one interface composed of the
area protocols, each defined and documented (Args, Returns, Raises) in its module:

    RepositoryStore   repositories.py   repositories, settings, resource tags, registry settings
    ManifestStore     manifests.py      blobs and links, manifests, tags, referrers; deletes
                                        (deletes.py) and image listing pages (image_pages.py)
    ScanStore         scans.py          scan results and scan requests
    CollectStore      collect.py        garbage collection in bounded batches
    IntegrityStore    integrity.py      fsck/scrub snapshots, quarantine of corrupt blobs
    IdentityStore     identities.py     accounts, users, access keys, user policies
    EventLogStore     eventlog.py       the event log and its consumers' cursors
    JobStore          jobs.py           durable jobs, nodes, leases
    WebhookStore      webhooks.py       webhook deliveries and attempts

Callers get dataclasses (models.py) and domain errors (errors.py); no SQL and no driver
object leaves ``registry/metadata``. Every write that changes what a client can see is one
transaction, and the events describing it are appended in that transaction (DESIGN: data
flow). ``store.SQLMetadataStore`` implements it on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Protocol

from registry.metadata.collect import CollectStore
from registry.metadata.eventlog import EventLogStore
from registry.metadata.identities import IdentityStore
from registry.metadata.integrity import IntegrityStore
from registry.metadata.jobs import JobStore
from registry.metadata.manifests import ManifestStore
from registry.metadata.models import TagDeletion  # noqa: F401 - re-exported
from registry.metadata.repositories import RepositoryStore
from registry.metadata.scans import ScanStore
from registry.metadata.webhooks import WebhookStore


class MetadataStore(RepositoryStore, ManifestStore, ScanStore, CollectStore, IntegrityStore,
                    IdentityStore, EventLogStore, JobStore, WebhookStore, Protocol):
    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
