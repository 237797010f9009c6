"""Identities: accounts, users, access keys and inline user policies, with IAM's rules.

``Identities`` is the domain service over the metadata store's ``IdentityStore``: it validates
names and policy documents, makes ids and secrets, seals secrets with the master key
(``SecretBox``, the access key id bound as associated data) and speaks IAM's errors; the store keeps
the rows and makes the check-then-write limits race-free on every backend.

Administration is synchronous (the CLI, the first start and tests call it without an event
loop); the request path, ``lookup_access_key`` and ``policies_for``, is async and sits behind
``CredentialCache`` so a request does not pay a query and AES-GCM every time.

Semantics follow IAM where IAM has an answer: name patterns, two access keys per user,
``DeleteConflict`` when deleting a user that still has keys or policies, and the error codes
(``NoSuchEntity``, ``EntityAlreadyExists``, ``LimitExceeded``, ``MalformedPolicyDocument``,
``ValidationError``). Policies are validated with ``policies.parse_policy`` as identity policies
before anything is stored.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from typing import TYPE_CHECKING, Callable, Iterator

from registry.auth.iam_rules import (
    ACCESS_KEY_ID, MAX_ACCESS_KEYS_PER_USER, DeleteConflict,
    EntityAlreadyExists, IdentityError, LimitExceeded, MalformedPolicyDocument, NoSuchEntity,
    ValidationError, _check_account, _check_policy_name, _check_user_name, _ID_ALPHABET,
    _SECRET_ALPHABET, validate_identity_policy,
)
from registry.auth.keys import SecretBox, load_master_keys
from registry.metadata.identities import (
    AccessKey, AccessKeyLimitError, IdentityStore, NewAccessKey, NoSuchAccessKeyError,
    NoSuchUserError, NoSuchUserPolicyError, User, UserExistsError, UserInUseError,
)

if TYPE_CHECKING:
    from registry.config import Config

log = logging.getLogger(__name__)


def user_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _new_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


@contextlib.contextmanager
def _iam_errors() -> Iterator[None]:
    """The store's refusals in IAM's words: the one place they are mapped."""
    try:
        yield
    except NoSuchUserError as exc:
        raise NoSuchEntity(f"The user with name {exc.name} cannot be found.") from None
    except NoSuchAccessKeyError as exc:
        raise NoSuchEntity(f"The Access Key with id {exc.key_id} cannot be found.") from None
    except NoSuchUserPolicyError as exc:
        raise NoSuchEntity(f"The user policy with name {exc.policy_name} cannot be found."
                           ) from None
    except UserExistsError as exc:
        raise EntityAlreadyExists(f"User with name {exc.name} already exists.") from None
    except AccessKeyLimitError as exc:
        raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {exc.limit}") from None
    except UserInUseError as exc:
        raise DeleteConflict(f"Cannot delete entity, must delete {exc.what} first.") from None


class Identities:
    """Accounts, users, access keys and inline policies over an ``IdentityStore``.

    ``store`` is the metadata store (``app[METADATA]`` in the server); ``from_config`` opens
    one for a command-line tool, and then ``close()`` closes it.
    """

    def __init__(self, store: IdentityStore, secret_box: SecretBox, *,
                 clock: Callable[[], float] = time.time,
                 on_close: Callable[[], None] | None = None) -> None:
        self.store = store
        self._box = secret_box
        self._clock = clock
        self._on_close = on_close

    @classmethod
    def from_config(cls, config: Config) -> Identities:
        """The identities of ``config``'s metadata store (SQLite or PostgreSQL), with the master
        keys ``[keys]`` names; the schema is prepared as the config says.

        Raises:
            MasterKeyError: a master key file is unusable.
            SchemaBehindError: the database needs ``berth db upgrade``.
            StoreError: the database cannot be opened.
        """
        from registry.metadata.factory import open_store

        box = SecretBox(load_master_keys(config))
        store = open_store(config)
        return cls(store, box, on_close=store.db.close_sync)

    def close(self) -> None:
        """Close the store if this object opened it (``from_config``); else nothing."""
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def _new_key(self) -> tuple[NewAccessKey, str]:
        key_id, secret = _random_id("AKIA", 16), _new_secret()
        return NewAccessKey(id=key_id, sealed_secret=self._box.seal(secret, key_id=key_id),
                            created_at=self._clock()), secret

    def _new_user(self, account: str, name: str) -> User:
        return User(id=_random_id("AIDA", 17), account=account, name=name,
                    arn=user_arn(account, name), created_at=self._clock())

    # -- accounts and users --------------------------------------------------------------------

    def ensure_account(self, account: str) -> None:
        """Create the account if it does not exist.

        Raises:
            ValidationError: not a 12-digit account id.
        """
        _check_account(account)
        self.store.ensure_account(account, now=self._clock())

    def list_accounts(self) -> list[str]:
        return self.store.list_accounts()

    def create_user(self, account: str, name: str) -> User:
        """Create user ``name`` in ``account`` (creating the account if needed).

        Raises:
            ValidationError: bad account id or user name.
            EntityAlreadyExists: the name is taken in this account.
        """
        _check_account(account)
        _check_user_name(name)
        user = self._new_user(account, name)
        with _iam_errors():
            user = self.store.create_user(user)
        log.info("user created", extra={"user_arn": user.arn})
        return user

    def get_user(self, account: str, name: str) -> User:
        """Raises: NoSuchEntity."""
        user = self.store.get_user(account, name)
        if user is None:
            raise NoSuchEntity(f"The user with name {name} cannot be found.")
        return user

    def list_users(self, account: str | None = None) -> list[User]:
        """Users of ``account`` (every account when None), ordered by account and name."""
        return self.store.list_users(account)

    def delete_user(self, account: str, name: str, *, force: bool = False) -> None:
        """Delete a user. Like IAM, refuse while it has access keys or policies, unless
        ``force`` (which deletes them with it).

        Raises:
            NoSuchEntity: no such user.
            DeleteConflict: the user still has access keys or inline policies.
        """
        with _iam_errors():
            self.store.delete_user(account, name, force=force)
        log.info("user deleted", extra={"user_arn": user_arn(account, name)})

    # -- access keys ---------------------------------------------------------------------------

    def create_access_key(self, account: str, user_name: str) -> tuple[AccessKey, str]:
        """Create an access key; returns it with its secret, the only time the secret is shown.

        Raises:
            NoSuchEntity: no such user.
            LimitExceeded: the user already has two access keys.
        """
        new, secret = self._new_key()
        with _iam_errors():
            key = self.store.create_access_key(account, user_name, new,
                                               limit=MAX_ACCESS_KEYS_PER_USER)
        log.info("access key created", extra={"user_arn": user_arn(account, user_name),
                                               "access_key_id": key.id})
        return key, secret

    def list_access_keys(self, account: str, user_name: str) -> list[AccessKey]:
        """Raises: NoSuchEntity."""
        with _iam_errors():
            return self.store.list_access_keys(account, user_name)

    def update_access_key(self, account: str, user_name: str, key_id: str, status: str) -> None:
        """Set a key ``Active`` or ``Inactive`` (inactive keys do not authenticate).

        Raises:
            ValidationError: unknown status.
            NoSuchEntity: no such user, or the key is not this user's.
        """
        if status not in ("Active", "Inactive"):
            raise ValidationError(f"1 validation error detected: Value {status!r} at 'status' "
                                  "failed to satisfy constraint: Member must satisfy enum "
                                  "value set: [Active, Inactive]")
        with _iam_errors():
            self.store.set_access_key_status(account, user_name, key_id, status)
        log.info("access key updated", extra={"access_key_id": key_id, "status": status})

    def delete_access_key(self, account: str, user_name: str, key_id: str) -> None:
        """Raises: NoSuchEntity (no such user, or the key is not this user's)."""
        with _iam_errors():
            self.store.delete_access_key(account, user_name, key_id)
        log.info("access key deleted", extra={"access_key_id": key_id})

    async def lookup_access_key(self, key_id: str) -> tuple[User, str] | None:
        """The owner and decrypted secret of an active key, or None (unknown or inactive).

        Raises:
            SecretBoxError: the stored secret does not decrypt (its master key is not
                configured, tampering);
                a server fault, not a client one.
            StoreError: the metadata database failed.
        """
        if not isinstance(key_id, str) or not ACCESS_KEY_ID.fullmatch(key_id):
            return None
        found = await self.store.lookup_access_key(key_id)
        if found is None:
            return None
        user, sealed = found
        return user, self._box.open(sealed, key_id=key_id)

    # -- inline policies -----------------------------------------------------------------------

    def put_user_policy(self, account: str, user_name: str, policy_name: str,
                        document: str) -> None:
        """Create or replace an inline policy; nothing is stored unless it is valid.

        Raises:
            ValidationError: bad policy name.
            MalformedPolicyDocument: not a valid identity policy (``problems`` lists all).
            NoSuchEntity: no such user.
        """
        _check_policy_name(policy_name)
        validate_identity_policy(document, name=policy_name)
        with _iam_errors():
            self.store.put_user_policy(account, user_name, policy_name, document,
                                       now=self._clock())
        log.info("user policy stored", extra={"user_arn": user_arn(account, user_name),
                                               "policy_name": policy_name})

    def get_user_policy(self, account: str, user_name: str, policy_name: str) -> str:
        """The document text as stored. Raises: NoSuchEntity."""
        with _iam_errors():
            return self.store.get_user_policy(account, user_name, policy_name)

    def delete_user_policy(self, account: str, user_name: str, policy_name: str) -> None:
        """Raises: NoSuchEntity."""
        with _iam_errors():
            self.store.delete_user_policy(account, user_name, policy_name)
        log.info("user policy deleted", extra={"user_arn": user_arn(account, user_name),
                                                "policy_name": policy_name})

    def list_user_policies(self, account: str, user_name: str) -> list[str]:
        """Policy names, sorted. Raises: NoSuchEntity."""
        with _iam_errors():
            return self.store.list_user_policies(account, user_name)

    async def policies_for(self, user: User) -> list[tuple[str, str]]:
        """``(name, document_text)`` of every inline policy of ``user``, sorted by name.

        Raises: StoreError.
        """
        return await self.store.user_policies(user.id)

    # -- first start ---------------------------------------------------------------------------

    def create_first_user(
        self, *, account: str, user_name: str, policy_name: str, policy_document: str,
        before_commit: Callable[[User, AccessKey, str], None],
    ) -> tuple[User, AccessKey, str] | None:
        """If the store has no account yet, create ``account``, the user, its inline policy and
        an access key in ONE transaction, and return them with the secret; else return None.

        ``before_commit(user, key, secret)`` runs inside the transaction (the bootstrap writes
        the credentials file there): if it raises, nothing is committed. Of processes racing
        here, on any number of nodes, exactly one creates the user (the store serialises
        first starts); the others return None.

        Raises:
            ValidationError, MalformedPolicyDocument: bad arguments.
        """
        _check_account(account)
        _check_user_name(user_name)
        _check_policy_name(policy_name)
        validate_identity_policy(policy_document, name=policy_name)
        user = self._new_user(account, user_name)
        new, secret = self._new_key()
        key = AccessKey(id=new.id, user_name=user.name, account=account, status="Active",
                        created_at=new.created_at)
        created = self.store.create_first_user(
            user, new, policy_name=policy_name, policy_document=policy_document,
            before_commit=lambda: before_commit(user, key, secret))
        return None if created is None else (*created, secret)


# The service's errors are part of its interface; they are defined with the naming rules.
__all__ = ["AccessKey", "DeleteConflict", "EntityAlreadyExists", "IdentityError", "Identities",
           "LimitExceeded", "MalformedPolicyDocument", "NoSuchEntity", "User", "ValidationError",
           "user_arn"]
