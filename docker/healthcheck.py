#!/opt/berth/bin/python3
"""The container's HEALTHCHECK: ``GET /healthz`` on the address the server listens on.

The address comes from the configuration the server reads (/etc/berth/berth.toml and the
``BERTH_*`` variables, which a ``docker exec``'d check inherits from the container), so a
listen address changed by either is checked where it is. A wildcard address (0.0.0.0, ::) is
asked on loopback. Exit status 0: healthy; 1: not (Docker's convention).
"""

from __future__ import annotations

import sys
import urllib.request

from registry.config import ConfigError, load_config

CONFIG_FILE = "/etc/berth/berth.toml"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def health_url(path: str = CONFIG_FILE) -> str:
    server = load_config(path, warn=lambda message: None).server
    host = _WILDCARDS.get(server.host, server.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}/healthz"


def main() -> int:
    try:
        url = health_url()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    # No proxy: HTTP(S)_PROXY set for webhooks or pip must not carry a loopback check away.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as response:
            healthy = response.status == 200
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: {'ok' if healthy else response.status}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
