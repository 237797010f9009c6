#!/usr/bin/env bash
# Berth's test command: on a fresh Debian bookworm machine, as root, install what the tests
# need, start a Docker engine if none answers, and run the whole pytest suite.
#
#   scripts/test.sh                      # everything under tests/
#   scripts/test.sh tests/clients -x     # arguments replace the default and go to pytest
#
# Debian packages are installed only when missing (apt-get update only then too): docker.io
# (the engine docker pushes/pulls/runs with), skopeo, busybox-static (the static binary the
# test images are built from), docker-registry (CNCF Distribution, the reference peer for
# bench/ and BERTH_TEST_REGISTRY=distribution), wrk (bench/), ca-certificates, mmdebstrap
# (real Debian bookworm images for the scanner tests, built from Debian's apt repository, and
# the base of Berth's own container image: tests/container runs scripts/base-image.sh),
# postgresql (PostgreSQL 15: the tests initdb a throwaway cluster of their own on a free
# loopback port, tests/support/postgres.py; the package's default cluster is not used),
# radosgw, ceph-mon and ceph-osd (Ceph 16: a throwaway single-node cluster with the RADOS
# Gateway, a real S3 endpoint for the S3 blob store, tests/support/ceph.py; the packages
# start no daemons, every one is started by the tests under a temporary directory), nginx (the
# load balancer in front of two Berth nodes in tests/container, with deploy/nginx-berth.conf;
# the package's own service stays stopped, the tests run nginx with a config of their own).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'test.sh: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
packages=(docker.io skopeo busybox-static docker-registry wrk ca-certificates mmdebstrap
          postgresql radosgw ceph-mon ceph-osd nginx)
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting services (docker.io would start dockerd with its
    # default bridge/iptables/overlay2 setup); the engine is started below with known flags.
    # postgresql-15's postinst creates the stopped default cluster (15/main, port 5432) and
    # then asks invoke-rc.d to start it, which this denies; the tests never use that cluster,
    # so it stays down and harmless (and would be harmless running: tests pick free ports).
    # The Ceph packages' postinsts ask to start their ceph-*.target units; denied likewise
    # (there is no /etc/ceph/ceph.conf for them anyway).
    own_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [[ -n "$own_policy" ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
fi

# --- Python test dependencies ----------------------------------------------------------------
log "installing Trivy (hash-pinned) and berth with its test extras"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --only-binary=:all: --require-hashes -r "${repo_root}/requirements-scanner.txt"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -e "${repo_root}[test]"

# --- Docker engine ---------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    dockerd_log="$(mktemp /tmp/berth-dockerd.XXXXXX.log)"
    log "starting dockerd (log: ${dockerd_log})"
    # No bridge or iptables: the tests run containers with --network none and talk to
    # registries on 127.0.0.1; vfs works on any filesystem, including overlay-in-overlay.
    setsid dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
        >"$dockerd_log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then
            break
        fi
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        log "dockerd did not answer within 60 s; its log:"
        tail -n 50 "$dockerd_log" >&2 || true
        exit 1
    fi
fi

# --- the suite -------------------------------------------------------------------------------
# Without arguments: the whole suite on the embedded default (SQLite; tests/metadata runs each
# contract test on SQLite and PostgreSQL anyway), then the protocol tiers again with every
# server on PostgreSQL (BERTH_TEST_METADATA, tests/support/metadata.py). Both must pass.
if (($# == 0)); then
    status=0
    python3 -m pytest -q -ra tests || status=$?
    log "again on PostgreSQL: the OCI, ECR, scanner and webhook tiers"
    BERTH_TEST_METADATA=postgresql python3 -m pytest -q -ra \
        tests/oci tests/ecr tests/scanner tests/webhooks || status=$?
    exit "$status"
fi
exec python3 -m pytest -q -ra "$@"
