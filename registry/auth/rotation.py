"""Re-sealing every stored secret under the current master key (``berth keys rotate``).

A rotation, on any number of nodes::

    1. berth keys generate /etc/berth/new.key, copied to every node (mode 0600)
    2. every node: [keys] key_file = new, previous_key_files = [old]; restart
       (from here on new secrets are sealed and tokens signed with the new key; the old
       one still opens and verifies)
    3. berth keys rotate, from any one node: every secret sealed by another key (or before
       key ids, format v1) is re-sealed under the new key
    4. every node: drop the old key from previous_key_files; restart. Tokens it signed stop
       working (401): clients log in again, as they do every 12 hours anyway.

The pass reads the access keys page by page (keyset on the id) and writes each page's
changes in one compare-and-swap transaction, so it holds no lock for long, runs while the
servers serve, and may be interrupted and run again: what is already sealed by the current
key is skipped, and a key that changed or vanished meanwhile is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from registry.auth.keys import SecretBox, SecretBoxError
from registry.metadata.identities import IdentityStore

DEFAULT_BATCH = 200


@dataclass
class RotationReport:
    """What a pass did. ``unreadable`` lists the access key ids whose secret opens under no
    configured key (a key missing from ``previous_key_files``, or tampering): left as is."""

    master_key_id: str
    examined: int = 0
    resealed: int = 0
    current: int = 0  # already sealed by the current key
    changed: int = 0  # deleted or re-sealed by someone else between read and write
    unreadable: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {"master_key_id": self.master_key_id, "examined": self.examined,
                "resealed": self.resealed, "already_current": self.current,
                "changed_meanwhile": self.changed, "unreadable": list(self.unreadable)}


def rotate_secrets(store: IdentityStore, box: SecretBox, *, batch: int = DEFAULT_BATCH,
                   on_batch: Callable[[RotationReport], None] | None = None) -> RotationReport:
    """Re-seal, under ``box``'s current key, every stored secret another key sealed.

    Args:
        batch: access keys read, and at most written, per transaction.
        on_batch: called with the report so far after each page (progress).

    Raises:
        ValueError: ``batch`` is not positive.
        StoreError: the metadata database failed (what was written so far stays written;
            running again finishes the job).
    """
    if batch < 1:
        raise ValueError("batch must be positive")
    report = RotationReport(master_key_id=box.master_key_id)
    after = ""
    while True:
        page = store.sealed_secrets(after=after, limit=batch)
        changes = []
        for key_id, sealed in page:
            report.examined += 1
            try:
                replacement = box.reseal(sealed, key_id=key_id)
            except SecretBoxError:
                report.unreadable.append(key_id)
                continue
            if replacement is None:
                report.current += 1
            else:
                changes.append((key_id, sealed, replacement))
        swapped = store.replace_sealed_secrets(changes)
        report.resealed += swapped
        report.changed += len(changes) - swapped
        if on_batch is not None:
            on_batch(report)
        if len(page) < batch:
            return report
        after = page[-1][0]
