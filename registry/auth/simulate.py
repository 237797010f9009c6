"""``berth policy``: the policy language's CLI, and ``simulate --data/--config`` against live state.

Offline (``policies.cli``), ``simulate`` evaluates only the files it is given. With ``--data DIR``
or ``--config FILE`` it asks the server's own ``PolicyAuthorizer`` — same code, same inputs — so
it answers exactly what the server decides for that request: the caller's inline policies and
``policy_dir`` files, the repository policy and tags (``aws:ResourceTag/*``) of the resource's
repository, and the registry policy of the resource's account. ``--policy`` and
``--resource-policy`` files are evaluated on top of those, ``--context`` keys replace the
computed ones.

The request is taken as the server sees a plain-HTTP request from an unknown address
(``aws:SecureTransport`` false, no ``aws:SourceIp``); ``--context aws:SecureTransport=true`` or
``--context aws:SourceIp=203.0.113.7`` describe a request that had them.

Registration is argparse only; the stores are imported when a live simulation runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from policies import cli as policy_cli

if TYPE_CHECKING:
    from policies import Decision, Policy
    from registry.auth.identities import Identities
    from registry.auth.principal import Principal
    from registry.config import Config

_USER_ARN = re.compile(r"arn:aws:iam::([0-9]{12}):user/([A-Za-z0-9_+=,.@-]{1,64})")
AUTH_OFF = "authorization is off ([auth] enabled = false): the server allows every request"


class Unusable(Exception):
    """The command line or the data directory cannot answer the question (exit status 2)."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``policy`` (``validate``, ``simulate``) with ``simulate --data/--config``."""
    return policy_cli.register(subparsers, simulate_hook=_add_live_options)


def _add_live_options(sim: argparse.ArgumentParser) -> None:
    sim.description = (sim.description or "") + (
        " With --data or --config, the request is decided as the running server decides it: "
        "the principal (a user ARN) with its stored and policy_dir policies, the repository "
        "policy and tags, and the registry policy; --policy/--resource-policy files are added "
        "on top.")
    sim.add_argument("--data", metavar="DIR",
                     help="decide against this data directory's users and policies")
    sim.add_argument("--config", metavar="FILE",
                     help="decide against this configuration's data directory and policy_dir")
    sim.set_defaults(func=run)


def run(args: argparse.Namespace, *, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """``policy simulate``: offline without ``--data``/``--config``, else against live state."""
    if args.data is None and args.config is None:
        return policy_cli.run_simulate(args, out=out, err=err)
    out, err = out or sys.stdout, err or sys.stderr
    inputs = policy_cli.read_simulation_inputs(args, err)
    if inputs is None:
        return 2
    context, identity, resource = inputs
    import asyncio

    from registry.config import ConfigError, load_config

    try:
        config = load_config(args.config, overrides={"data_dir": args.data})
        if not config.auth.enabled:
            return _auth_off(args, out)
        decision = asyncio.run(simulate(config, principal=args.principal, action=args.action,
                                        resource=args.resource, extra_identity=identity,
                                        extra_resource=resource, context=context, err=err))
    except (Unusable, ConfigError) as exc:
        print(f"berth: {exc}", file=err)
        return 2
    return policy_cli.print_decision(decision, args, out)


def _auth_off(args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        print(json.dumps({"decision": "allowed", "reason": AUTH_OFF}, indent=2), file=out)
    else:
        print(f"decision: allowed\nreason: {AUTH_OFF}", file=out)
    return 0


async def simulate(config: Config, *, principal: str, action: str, resource: str,
                   extra_identity: Sequence[Policy] = (), extra_resource: Sequence[Policy] = (),
                   context: dict[str, list[str]] | None = None,
                   err: TextIO | None = None) -> Decision:
    """What the server configured by ``config`` decides for one request, explained.

    Raises:
        Unusable: no data directory or identities there, an unknown or unsupported principal,
            a repository ARN of a region this server does not serve.
    """
    from registry.auth.authorize import AccessRequest
    from registry.auth.credential_cache import CredentialCache
    from registry.auth.identities import Identities
    from registry.auth.keys import MasterKeyError, SecretBox, load_master_keys
    from registry.auth.policy_authorizer import PolicyAuthorizer
    from registry.auth.policy_files import PolicyDirectory
    from registry.datadir import ensure_data_dir
    from registry.metadata.factory import open_store

    sqlite_missing = (config.metadata.backend == "sqlite"
                      and not config.metadata_path.is_file())
    try:
        keys = None if sqlite_missing else load_master_keys(config, create=False)
    except MasterKeyError as exc:
        raise Unusable(str(exc)) from None
    if keys is None:
        raise Unusable(f"{config.data_dir} holds no registry (no metadata.db): "
                       "start the server on it once, or name the right --data/--config")
    ensure_data_dir(config.data_dir)
    policy_dir = None
    if config.auth.policy_dir:
        policy_dir = PolicyDirectory(config.auth.policy_dir)
        for problem in policy_dir.reload():
            print(f"warning: skipped as the server does: {problem}", file=err or sys.stderr)
    # One store for identities and repositories, as in the server: the SQLite file or the
    # PostgreSQL database the config names.
    metadata = open_store(config)
    try:
        identities = Identities(metadata, SecretBox(keys))
        caller = _principal(identities, principal)
        access = AccessRequest(principal=caller, action=action, resource=resource,
                               account=_resource_account(config, caller, resource))
        authorizer = PolicyAuthorizer(metadata=metadata,
                                      credentials=CredentialCache(identities),
                                      policy_dir=policy_dir)
        return await authorizer.evaluate(access, extra_identity=extra_identity,
                                         extra_resource=extra_resource, context=context)
    finally:
        await metadata.close()


def _principal(store: Identities, arn: str) -> Principal:
    from registry.auth.authenticate import principal_for
    from registry.auth.iam_rules import NoSuchEntity
    from registry.auth.principal import ANONYMOUS

    if arn == "anonymous":
        return ANONYMOUS
    match = _USER_ARN.fullmatch(arn)
    if match is None:
        raise Unusable("--principal: with --data/--config, a user ARN "
                       "(arn:aws:iam::<account>:user/<name>) or 'anonymous': the server's "
                       f"callers are its users; got {arn!r}")
    try:
        return principal_for(store.get_user(match[1], match[2]))
    except NoSuchEntity:
        raise Unusable(f"--principal: account {match[1]} has no user {match[2]!r}") from None


def _resource_account(config: Config, caller: Principal, resource: str) -> str:
    """The account owning ``resource``: the repository ARN's, else (``*``) the caller's."""
    from registry.auth.authorize import parse_repository_arn

    parsed = parse_repository_arn(resource)
    if parsed is None:
        return caller.account or config.default_account
    region, account, _ = parsed
    if region != config.region:
        raise Unusable(f"--resource: this registry serves {config.region}; it never decides "
                       f"on repositories of {region}")
    return account
