"""nginx from Debian as the load balancer in front of Berth nodes (``berth-1node``,
``berth-2nodes``): a plain HTTP reverse proxy on 127.0.0.1, configured the way the README's
multi-node deployment runs it.

- ``upstream`` with the nodes, round robin, ``keepalive`` connections to them, HTTP/1.1 and
  an empty ``Connection`` header so those connections are reused (without it nginx opens a
  new upstream connection per request, which would measure nginx's connects, not Berth);
- ``client_max_body_size 0`` (a layer has no size limit) and ``proxy_request_buffering off``
  (an upload streams to the node as it arrives instead of being spooled to disk first);
- response buffering on (a small response frees the upstream connection at once) but
  ``proxy_max_temp_file_size 0``: a large blob streams at the client's pace instead of
  being written to a temp file;
- ``Host`` passed through, so the ``Location`` of an upload names the proxy;
- ``worker_processes auto`` (one per core: 2 here), not pinned; access log off, as every
  Berth target runs with its access log off.

nginx runs in the foreground (``daemon off``) in the target's process group, with every path
(prefix, pid file, temp dirs) in the target's own directory; its errors go to stderr, i.e. the
target's log.
"""

from __future__ import annotations

import os
import shutil

NGINX_BINARY = shutil.which("nginx") or "/usr/sbin/nginx"
INSTALL_HINT = "apt-get install nginx (Debian's nginx; its service need not run)"
UPSTREAM_KEEPALIVE = 64


def nginx_config(*, prefix: str, listen: str, upstreams: list[str]) -> str:
    """The whole nginx.conf: listen on ``listen``, balance over ``upstreams`` (host:port)."""
    servers = "\n".join(f"        server {address};" for address in upstreams)
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log stderr error;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    upstream berth {{
{servers}
        keepalive {UPSTREAM_KEEPALIVE};
    }}

    server {{
        listen {listen};
        client_max_body_size 0;

        location / {{
            proxy_pass http://berth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
            proxy_buffering on;
            proxy_max_temp_file_size 0;
            proxy_read_timeout 900s;
            proxy_send_timeout 900s;
        }}
    }}
}}
"""


def nginx_command(prefix: str) -> list[str]:
    """Run nginx in the foreground with ``prefix/nginx.conf``; errors before the config is
    read go to stderr too (``-e``), not to /var/log/nginx."""
    return [NGINX_BINARY, "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"),
            "-e", "stderr"]
