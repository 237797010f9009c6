"""``berth iam``: manage users, access keys and inline policies, like ``aws iam``.

Works while the server runs (on SQLite in WAL mode or PostgreSQL, whichever the config names);
servers see changes within their credential cache's ttl (5 s). Output is JSON in the shape ``aws iam`` prints for the same
operation, so scripts written for one work with the other. Exit status: 0 on success, 1 on an
error (printed to stderr as ``An error occurred (Code) when calling the Op operation: ...``),
2 on a configuration error. The only secret ever printed is the ``SecretAccessKey`` of
``create-access-key``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from registry.config import Config, ConfigError, load_config

if TYPE_CHECKING:  # the store (SQLAlchemy, cryptography) is imported when a command runs
    from registry.auth.identities import AccessKey, Identities, User

_Handler = Callable[["Identities", argparse.Namespace, str], "dict[str, Any] | None"]


class _UsageError(Exception):
    """A problem with the command line itself (unreadable policy file, missing data dir)."""


def _date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _user_json(user: User) -> dict[str, Any]:
    return {"Path": "/", "UserName": user.name, "UserId": user.id, "Arn": user.arn,
            "CreateDate": _date(user.created_at)}


def _key_json(key: AccessKey) -> dict[str, Any]:
    return {"UserName": key.user_name, "AccessKeyId": key.id, "Status": key.status,
            "CreateDate": _date(key.created_at)}


def _policy_document(value: str) -> str:
    """``file://PATH``, ``fileb://PATH`` or the JSON text itself, as the aws CLI accepts."""
    for prefix in ("file://", "fileb://"):
        if value.startswith(prefix):
            path = Path(value[len(prefix):]).expanduser()
            try:
                return path.read_bytes().decode("utf-8")
            except OSError as exc:
                raise _UsageError(f"cannot read policy document {path}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise _UsageError(f"policy document {path} is not UTF-8 text") from None
    return value


# -- operations --------------------------------------------------------------------------------

def _create_user(store: Identities, args: argparse.Namespace, account: str) -> dict[str, Any]:
    return {"User": _user_json(store.create_user(account, args.user_name))}


def _get_user(store: Identities, args: argparse.Namespace, account: str) -> dict[str, Any]:
    return {"User": _user_json(store.get_user(account, args.user_name))}


def _list_users(store: Identities, args: argparse.Namespace, account: str) -> dict[str, Any]:
    return {"Users": [_user_json(user) for user in store.list_users(account)]}


def _delete_user(store: Identities, args: argparse.Namespace, account: str) -> None:
    store.delete_user(account, args.user_name, force=args.force)


def _create_access_key(store: Identities, args: argparse.Namespace,
                       account: str) -> dict[str, Any]:
    key, secret = store.create_access_key(account, args.user_name)
    return {"AccessKey": {"UserName": key.user_name, "AccessKeyId": key.id,
                          "Status": key.status, "SecretAccessKey": secret,
                          "CreateDate": _date(key.created_at)}}


def _list_access_keys(store: Identities, args: argparse.Namespace,
                      account: str) -> dict[str, Any]:
    keys = store.list_access_keys(account, args.user_name)
    return {"AccessKeyMetadata": [_key_json(key) for key in keys]}


def _update_access_key(store: Identities, args: argparse.Namespace, account: str) -> None:
    store.update_access_key(account, args.user_name, args.access_key_id, args.status)


def _delete_access_key(store: Identities, args: argparse.Namespace, account: str) -> None:
    store.delete_access_key(account, args.user_name, args.access_key_id)


def _put_user_policy(store: Identities, args: argparse.Namespace, account: str) -> None:
    document = _policy_document(args.policy_document)
    store.put_user_policy(account, args.user_name, args.policy_name, document)


def _get_user_policy(store: Identities, args: argparse.Namespace,
                     account: str) -> dict[str, Any]:
    text = store.get_user_policy(account, args.user_name, args.policy_name)
    # aws iam get-user-policy prints the document decoded, as a JSON object.
    return {"UserName": args.user_name, "PolicyName": args.policy_name,
            "PolicyDocument": json.loads(text)}


def _delete_user_policy(store: Identities, args: argparse.Namespace, account: str) -> None:
    store.delete_user_policy(account, args.user_name, args.policy_name)


def _list_user_policies(store: Identities, args: argparse.Namespace,
                        account: str) -> dict[str, Any]:
    return {"PolicyNames": store.list_user_policies(account, args.user_name)}


# -- plumbing ----------------------------------------------------------------------------------

def _config(args: argparse.Namespace) -> Config:
    from registry.datadir import ensure_data_dir

    config = load_config(args.config, overrides={"data_dir": args.data})
    if not Path(config.data_dir).is_dir():
        raise _UsageError(f"data directory {config.data_dir} does not exist "
                          "(start the server once, or create it)")
    ensure_data_dir(config.data_dir)
    return config


def _error(message: str) -> int:
    print(f"berth iam: {message}", file=sys.stderr)
    return 1


def _runner(operation: str, handler: _Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from registry.auth.identities import IdentityError, Identities, MalformedPolicyDocument
        from registry.auth.keys import MasterKeyError
        from registry.metadata.errors import StoreError
        from registry.metadata.migrate import SchemaBehindError

        try:
            config = _config(args)
            store = Identities.from_config(config)
        except (ConfigError, SchemaBehindError) as exc:
            print(f"berth: {exc}", file=sys.stderr)
            return 2
        except (_UsageError, MasterKeyError, StoreError) as exc:
            return _error(str(exc))
        try:
            result = handler(store, args, getattr(args, "account", None) or config.default_account)
        except MalformedPolicyDocument as exc:
            lines = [f"An error occurred ({exc.code}) when calling the {operation} operation: "
                     f"the policy document has {len(exc.problems)} problem(s):"]
            lines += [f"  {problem}" for problem in exc.problems]
            return _error("\n".join(lines))
        except IdentityError as exc:
            return _error(f"An error occurred ({exc.code}) when calling the {operation} "
                          f"operation: {exc.message}")
        except (_UsageError, StoreError) as exc:
            return _error(str(exc))
        finally:
            store.close()
        if result is not None:
            print(json.dumps(result, indent=4))
        return 0

    return run


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``iam`` and its commands to an argparse sub-parser set; each command's ``func``
    takes the parsed namespace and returns the exit status."""
    parser = subparsers.add_parser(
        "iam", help="manage users, access keys and identity policies",
        description="Manage identities like `aws iam`; safe while the server runs.")
    commands = parser.add_subparsers(dest="iam_command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML configuration file")
    common.add_argument("--data", metavar="DIR", help="data directory (default ./berth-data)")

    def add(name: str, operation: str, handler: _Handler, help: str, *, account: bool = True,
            user: bool = True) -> argparse.ArgumentParser:
        command = commands.add_parser(name, parents=[common], help=help, description=help)
        if user:
            command.add_argument("--user-name", required=True, metavar="NAME")
        if account:
            command.add_argument("--account", metavar="ID",
                                 help="12-digit account id (default: the configured default)")
        command.set_defaults(func=_runner(operation, handler))
        return command

    add("create-user", "CreateUser", _create_user, "create a user")
    add("get-user", "GetUser", _get_user, "show a user")
    add("list-users", "ListUsers", _list_users, "list the users of an account", user=False)
    add("delete-user", "DeleteUser", _delete_user,
        "delete a user (its access keys and policies must be deleted first, or use --force)"
        ).add_argument("--force", action="store_true",
                       help="also delete the user's access keys and inline policies")
    add("create-access-key", "CreateAccessKey", _create_access_key,
        "create an access key and print its secret (shown only this once)")
    add("list-access-keys", "ListAccessKeys", _list_access_keys, "list a user's access keys")
    update = add("update-access-key", "UpdateAccessKey", _update_access_key,
                 "activate or deactivate an access key")
    update.add_argument("--access-key-id", required=True, metavar="KEY")
    update.add_argument("--status", required=True, choices=("Active", "Inactive"))
    delete_key = add("delete-access-key", "DeleteAccessKey", _delete_access_key,
                     "delete an access key")
    delete_key.add_argument("--access-key-id", required=True, metavar="KEY")
    put = add("put-user-policy", "PutUserPolicy", _put_user_policy,
              "create or replace an inline identity policy")
    put.add_argument("--policy-name", required=True, metavar="NAME")
    put.add_argument("--policy-document", required=True, metavar="DOC",
                     help="file://PATH, fileb://PATH or the JSON text")
    for name, operation, handler, help in (
            ("get-user-policy", "GetUserPolicy", _get_user_policy, "show an inline policy"),
            ("delete-user-policy", "DeleteUserPolicy", _delete_user_policy,
             "delete an inline policy")):
        add(name, operation, handler, help).add_argument("--policy-name", required=True,
                                                         metavar="NAME")
    add("list-user-policies", "ListUserPolicies", _list_user_policies,
        "list a user's inline policy names")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``iam ...`` standalone (tests; before the ``berth`` command hooks it in)."""
    parser = argparse.ArgumentParser(prog="berth")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
