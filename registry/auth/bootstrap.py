"""First start: an administrator and a credentials file, so a new registry is usable at once.

On a data dir whose identity store has no account yet, ``bootstrap(config)`` creates account
``config.default_account``, user ``admin`` with the inline policy ``AdministratorAccess``
(``*`` on ``*``) and one access key, and writes ``<data>/credentials`` in AWS shared-credentials
format, mode 0600. Afterwards it returns None and touches nothing, even when every user has
since been deleted (the account remains): an operator who removed the admin does not get it back
by restarting.

The credentials file is written inside the database transaction that creates the user, so a
failure to write it leaves no half-made admin, and of workers starting at once, on one machine
or on several nodes sharing PostgreSQL, exactly one creates the admin while the others wait and
then see it (see ``IdentityStore.create_first_user`` in ``registry/metadata/identities.py``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.auth.identities import AccessKey, Identities, User

if TYPE_CHECKING:
    from registry.config import Config

log = logging.getLogger(__name__)

ADMIN_USER = "admin"
ADMIN_POLICY_NAME = "AdministratorAccess"
ADMIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]}, indent=2)
CREDENTIALS_FILE = "credentials"


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """What the first start created; the secret is only in the credentials file."""

    account: str
    user: User
    access_key_id: str
    credentials_path: Path


def credentials_path(config: Config) -> Path:
    return Path(config.data_dir) / CREDENTIALS_FILE


def bootstrap(config: Config, *, store: Identities | None = None) -> BootstrapResult | None:
    """Create the first administrator if the identity store is empty; else return None.

    ``store`` defaults to ``Identities.from_config(config)`` (opened and closed here).

    Raises:
        MasterKeyError: the master key file is unusable.
        OSError: the credentials file cannot be written (nothing is created then).
        StoreError: the metadata database failed.
    """
    if store is None:
        owned = Identities.from_config(config)
        try:
            return bootstrap(config, store=owned)
        finally:
            owned.close()
    path = credentials_path(config)

    def write(user: User, key: AccessKey, secret: str) -> None:
        write_credentials_file(path, key.id, secret, config.region)

    created = store.create_first_user(account=config.default_account, user_name=ADMIN_USER,
                                      policy_name=ADMIN_POLICY_NAME,
                                      policy_document=ADMIN_POLICY, before_commit=write)
    if created is None:
        return None
    user, key, _secret = created
    log.info("first start: administrator created",
             extra={"user_arn": user.arn, "access_key_id": key.id,
                    "credentials_file": str(path)})
    return BootstrapResult(account=user.account, user=user, access_key_id=key.id,
                           credentials_path=path)


def render_credentials(access_key_id: str, secret: str, region: str) -> str:
    """The ``[default]`` profile in AWS shared-credentials format (botocore also reads
    ``region`` from it)."""
    return (f"[default]\naws_access_key_id = {access_key_id}\n"
            f"aws_secret_access_key = {secret}\nregion = {region}\n")


def write_credentials_file(path: Path, access_key_id: str, secret: str, region: str) -> None:
    """Atomically (re)place ``path`` with a 0600 credentials file.

    The temporary file is created 0600 by ``os.open`` itself, so the secret is never readable
    by anyone else, not even for an instant; it is fsynced and renamed over ``path``. A file
    left by a first start that crashed before committing is replaced.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(render_credentials(access_key_id, secret, region))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def usage_lines(config: Config, credentials_path: Path, host: str) -> list[str]:
    """The lines to print after a first start: how to log docker in and use boto3.

    ``host`` is what clients will type (``localhost:5000``); a wildcard listen address
    (``0.0.0.0:5000``, ``[::]:5000``) is shown as ``localhost``, which docker also treats as
    a plain-HTTP registry without configuration. Secrets never appear; the commands read them
    from the credentials file.
    """
    name, sep, port = host.rpartition(":")
    if sep and name in ("0.0.0.0", "[::]", "::", ""):
        host = f"localhost:{port}"
    creds = Path(credentials_path).resolve()
    env = f"AWS_SHARED_CREDENTIALS_FILE={shlex.quote(str(creds))}"
    endpoint = f"http://{host}"
    return [
        f"Berth first start: created user {ADMIN_USER} with full access in account "
        f"{config.default_account}.",
        f"Its access key is in {creds} (AWS shared-credentials format, profile [default], "
        f"region {config.region}).",
        "Log docker in:",
        f"  {env} aws ecr get-login-password --endpoint-url {endpoint} "
        f"| docker login --username AWS --password-stdin {host}",
        "Use the ECR API from Python:",
        f"  {env} python3 -c 'import boto3; "
        f"print(boto3.client(\"ecr\", endpoint_url=\"{endpoint}\").describe_repositories())'",
        "Create more users with `berth iam create-user` and `berth iam create-access-key`.",
    ]
