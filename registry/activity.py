"""Upload activity of this process, for work that should yield to pushes.

Background scans share two cores with the server; while a blob upload is being received the
scanner pauses its subprocesses (see ``scanner.service``) so a push runs as fast as on an
idle server. Listeners hear only the transitions: idle → busy and busy → idle.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


class UploadActivity:
    def __init__(self) -> None:
        self.active = 0
        self.listeners: list[Callable[[bool], None]] = []

    def _notify(self, busy: bool) -> None:
        for listener in self.listeners:
            listener(busy)

    @contextmanager
    def upload(self) -> Iterator[None]:
        self.active += 1
        if self.active == 1:
            self._notify(True)
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0:
                self._notify(False)
