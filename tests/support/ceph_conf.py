"""The test cluster's ceph.conf: the one file every daemon and command of tests/support/ceph.py
reads: one-OSD placement (pool size 1, chooseleaf type 0: replicas may share a host, few
PGs, no autoscaler, no full-disk refusal), cephx off, 127.0.0.1 only, and every path under
the cluster's directory so nothing touches /etc, /var/lib, /var/log or /run/ceph. Options
whose absence cost minutes when this was measured carry a comment.
"""

from __future__ import annotations

from pathlib import Path


def ceph_conf(base: Path, *, fsid: str, mon_ports: tuple[int, int], rgw_port: int,
              memstore_bytes: int) -> str:
    """The cluster's ceph.conf, every path under `base`, the monitor on `mon_ports` (msgr v2,
    v1), radosgw on `rgw_port`, the OSD storing at most `memstore_bytes` in RAM."""
    v2, v1 = mon_ports
    return f"""\
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
run dir = {base}/run
admin socket = {base}/run/$name.asok
log file = {base}/log/$name.log
crash dir = {base}/crash
keyring = {base}/keyring
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon data avail crit = 0

[mon.a]
mon data = {base}/mon.a
# The address it binds; `public addr` alone would give it the default ports.
public addrv = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
# Without these, creating RGW's pools alone takes ~8.5 s and a cold start 13-15 s.
paxos propose interval = 0.05
paxos min wait = 0.01

[osd]
osd data = {base}/osd/$id
osd objectstore = memstore
memstore device bytes = {memstore_bytes}

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {base}/rgw
# Without it radosgw waits 300 s on `get_initial_auth_request returned -13`, then fails.
ms mon client mode = crc secure
# Deleted data is freed after 10 s instead of 2 h (memstore keeps it in RAM until then).
rgw gc obj min wait = 10
rgw gc processor period = 10
"""
