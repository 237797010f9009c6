#!/usr/bin/env bash
# The base image Berth's Dockerfile builds FROM: a minimal Debian bookworm root filesystem
# made with mmdebstrap from Debian's own apt repository and imported into the local Docker
# engine, so building Berth's image needs no public image hub.
#
#   scripts/base-image.sh           # build and import it unless the tag exists; print the tag
#   scripts/base-image.sh --tag     # only print the tag (the Dockerfile's ARG BASE default)
#   scripts/base-image.sh --rebuild # build and import it even if the tag exists (security
#                                   # updates arrive without changing the recipe)
#
# The tag is berth-base/bookworm:<first 12 hex of the SHA-256 of the recipe below>: any change
# to the packages, sources or options names a new image, and the old one stays until removed.
# Needs root (mmdebstrap's root mode), mmdebstrap and a Docker engine. Logs go to stderr; the
# one line on stdout is the tag.
set -euo pipefail

log() { printf 'base-image.sh: %s\n' "$*" >&2; }

# --- the recipe (every line of it goes into the tag) -------------------------------------------
suite=bookworm
variant=minbase
sources=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)
# python3-venv brings ensurepip (pip and setuptools wheels) for the image's virtual
# environment; ca-certificates for pip at build time and for webhooks and S3 over TLS; tini
# as PID 1 (passes signals on, reaps orphaned children of scanner runs).
packages=(python3 python3-venv ca-certificates tini)
# Documentation, manuals and translations are no use in a server image; licences stay.
dpkg_options=(
    "path-exclude=/usr/share/doc/*"
    "path-include=/usr/share/doc/*/copyright"
    "path-exclude=/usr/share/man/*"
    "path-exclude=/usr/share/info/*"
    "path-exclude=/usr/share/locale/*"
    "path-include=/usr/share/locale/locale.alias"
    "path-exclude=/usr/share/lintian/*"
)
# Merged /usr the way debootstrap sets it up (directory symlinks plus the tiny usr-is-merged
# package); without the hook apt satisfies init-system-helpers with usrmerge, which brings
# perl: 50 MiB more.
hook_dir=/usr/share/mmdebstrap/hooks/merged-usr
# docker import makes an image without any configuration; these are the usual ones.
image_changes=(
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "ENV LANG=C.UTF-8"
    'CMD ["/bin/bash"]'
)
recipe=("$suite" "$variant" "$hook_dir" "${sources[@]}" "${packages[@]}" "${dpkg_options[@]}"
        "${image_changes[@]}")
tag="berth-base/bookworm:$(printf '%s\n' "${recipe[@]}" | sha256sum | cut -c1-12)"

rebuild=""
case "${1:-}" in
    --tag) printf '%s\n' "$tag"; exit 0 ;;
    --rebuild) rebuild=1 ;;
    "") ;;
    *) log "unknown argument: $1 (expected --tag or --rebuild)"; exit 2 ;;
esac

# One build at a time on this machine (test sessions of several worktrees share the engine).
exec 9>"/var/tmp/berth-base-image.lock"
flock 9

if [[ -z "$rebuild" ]] && docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag exists"
    printf '%s\n' "$tag"
    exit 0
fi

log "building $tag with mmdebstrap ($suite, $variant, ${packages[*]})"
started=$SECONDS
mmdebstrap_args=(--quiet --variant="$variant" --hook-dir="$hook_dir"
                 --include="$(IFS=,; echo "${packages[*]}")")
for option in "${dpkg_options[@]}"; do
    mmdebstrap_args+=(--dpkgopt="$option")
done
change_args=()
for change in "${image_changes[@]}"; do
    change_args+=(--change "$change")
done
# The tarball streams straight into docker import: no temporary copy of the root filesystem.
# The import stays untagged until both sides of the pipe succeeded, so a failed or cut-short
# build never leaves a tag that later runs would take for a finished base.
image_id=$(mmdebstrap "${mmdebstrap_args[@]}" "$suite" - "${sources[@]}" \
    | docker import "${change_args[@]}" \
        --message "Debian $suite ($variant + ${packages[*]}) by scripts/base-image.sh" -) || {
    status=$?
    log "building $tag failed (exit $status)"
    if [[ -n "${image_id:-}" ]]; then
        docker image rm "$image_id" >/dev/null 2>&1 || true
    fi
    exit "$status"
}
docker tag "$image_id" "$tag"
size=$(docker image inspect --format '{{.Size}}' "$tag")
log "imported $tag: $((size / 1024 / 1024)) MiB in $((SECONDS - started)) s"
printf '%s\n' "$tag"
