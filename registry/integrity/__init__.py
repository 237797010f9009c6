"""Blob integrity: re-hash stored blobs, walk every tag's closure, quarantine what is corrupt.

``berth fsck`` (``fsck.py``) runs it on demand; the server's periodic scrub (``scrub.py``) runs
the hashing and the repair at low priority. Both share ``check.py`` and ``repair.py``.
"""
