"""Scans yield to uploads: transitions, the pause limit and its cooldown."""

from __future__ import annotations

import asyncio

from registry.activity import UploadActivity
from scanner.service import YieldToUploads


class RecordingScanner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


def test_scans_pause_only_between_first_upload_start_and_last_upload_end():
    activity = UploadActivity()
    scanner = RecordingScanner()
    activity.listeners.append(YieldToUploads(scanner))
    with activity.upload():
        with activity.upload():
            assert scanner.calls == ["pause"]
        assert scanner.calls == ["pause"]
    assert scanner.calls == ["pause", "resume"]


def test_long_pauses_are_capped_then_scans_get_a_cooldown():
    clock = [100.0]
    scanner = RecordingScanner()
    yielder = YieldToUploads(scanner, clock=lambda: clock[0])
    yielder(True)
    clock[0] += yielder.max_pause + 1
    asyncio.run(yielder.check())
    assert scanner.calls == ["pause", "resume"]
    yielder(False)
    yielder(True)  # within the cooldown: no pause
    assert scanner.calls == ["pause", "resume"]
    clock[0] += yielder.cooldown + 1
    yielder(False)
    yielder(True)
    assert scanner.calls == ["pause", "resume", "pause"]
