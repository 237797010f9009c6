"""What one server process wires for webhooks, rebuilt per "process" by the tests."""

from __future__ import annotations

import random

from registry.events import Consumers, JobQueue
from registry.worker import RetryPolicy, Worker
from registry.metadata.models import Event, ManifestRecord
from scanner.service import webhook_consumers
from scanner.webhooks import DELIVER_JOB, DeliveryLog, Endpoint, WebhookDeliverer

ACCOUNT = "123456789012"
REGION = "eu-west-1"
DIGEST = "sha256:" + "7f" * 32
SECRET = "whsec-3b1f0c5e9d2a4c7b8e6f1a0d9c8b7a65"


class Pipeline:
    def __init__(self, store, endpoints: list[Endpoint], clock, *,
                 retry: RetryPolicy = RetryPolicy(base=5.0, cap=300.0, max_attempts=8),
                 resolver=None) -> None:
        self.queue = JobQueue(store, clock=clock)
        self.deliveries = DeliveryLog(store)
        self.deliverer = deliverer = WebhookDeliverer(endpoints, self.deliveries,
                                                      resolver=resolver, clock=clock)
        self.consumers = Consumers(store, webhook_consumers(endpoints, region=REGION),
                                   clock=clock)
        self.worker = Worker(self.queue, {DELIVER_JOB: deliverer}, consumers=self.consumers,
                             retry=retry,
                             concurrency=4, lease_seconds=60, clock=clock, sleep=clock.sleep,
                             rng=random.Random(7))

    @classmethod
    async def open(cls, *args, **kwargs) -> "Pipeline":
        """A pipeline whose consumers exist, as a server's do once it has started."""
        pipeline = cls(*args, **kwargs)
        await pipeline.consumers.register()
        return pipeline

    async def close(self) -> None:
        await self.worker.stop(grace=1)
        await self.deliverer.close()


def endpoint(url: str, **options) -> Endpoint:
    """An endpoint for the receiver on 127.0.0.1: loopback needs the opt-in."""
    options.setdefault("name", "ci")
    options.setdefault("timeout", 5.0)
    options.setdefault("allow_private_network", True)
    return Endpoint(url=url, secret=SECRET, **options)


async def push_image(store, name: str = "team/app", tags=("v1",)) -> None:
    """A manifest PUT as the registry records it: manifest, tags and the fact, one transaction."""
    repo = await store.ensure_repository(ACCOUNT, name)
    event = Event("image.pushed", {"account": ACCOUNT, "repository": name, "digest": DIGEST,
                                   "tags": list(tags), "mediaType": "application/json"})
    await store.put_manifest(repo.id, ManifestRecord(DIGEST, "application/json", 2),
                             list(tags), [event])
