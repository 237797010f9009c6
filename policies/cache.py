"""A bounded cache of parsed, compiled policies, so the request path never re-parses JSON.

Policies are stored as text (metadata rows, files); a request looks its policies up here by
text. The key is `(kind, name, text)`: Python hashes a string once per string object, and the
full text as key means two different documents can never share an entry. Invalid documents are
not cached — they are rejected when stored, so they should not reach the request path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from policies.model import Policy, PolicyKind
from policies.parse import parse_policy

__all__ = ["PolicyCache"]


class PolicyCache:
    """Least-recently-used map from policy text to compiled `Policy`. Thread-safe."""

    def __init__(self, *, maxsize: int = 1024) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._entries: OrderedDict[tuple[PolicyKind, str, str], Policy] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str, *, kind: PolicyKind, name: str) -> Policy:
        """Return the compiled policy for `text`, parsing it on first use.

        Raises:
            PolicyError: the text is not a valid policy of this kind.
        """
        key = (kind, name, text)
        with self._lock:
            policy = self._entries.get(key)
            if policy is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return policy
            self.misses += 1
        policy = parse_policy(text, kind=kind, name=name)  # outside the lock: parsing is slow
        with self._lock:
            self._entries[key] = policy
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        return policy

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
