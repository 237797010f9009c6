"""The real authorizer: IAM policy evaluation for every request on both APIs.

For (principal, action, resource) it gathers the caller's identity policies (stored inline
policies plus policy files), the repository policy of the resource and the registry policy of
the resource's account, and asks ``policies.evaluate`` (DESIGN: identity model). Compiled
policies come from a ``PolicyCache`` keyed by document text, so the request path never parses
JSON; short-lived lookups of policy texts keep it free of repeated queries too.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import policies
from policies import Decision, PolicyCache, PolicyKind
from registry.auth.authorize import AccessRequest, Verdict, parse_repository_arn
from registry.auth.credential_cache import CredentialCache
from registry.auth.identities import User
from registry.auth.policy_files import PolicyDirectory
from registry.auth.principal import Principal

log = logging.getLogger(__name__)

REGISTRY_POLICY = "REGISTRY_POLICY"


class _Memo:
    """A tiny TTL memo for per-resource lookups (policy texts, resource tags)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._entries.clear()


class PolicyAuthorizer:
    """``Authorizer`` backed by IAM policy evaluation.

    Resource-side lookups are memoised for ``ttl`` seconds per process; writes made through
    this process call ``invalidate`` so they apply at once here, and within ``ttl`` elsewhere.
    """

    def __init__(self, *, metadata, credentials: CredentialCache,
                 policy_dir: PolicyDirectory | None = None, ttl: float = 1.0) -> None:
        self.metadata = metadata
        self.credentials = credentials
        self.policy_dir = policy_dir
        self.cache = PolicyCache()
        self._memo = _Memo(ttl)
        self._subjects: dict[tuple, policies.Principal] = {}
        # Decisions repeat: a pull asks the same (caller, action, repository) dozens of times.
        # They are kept as long as the resource-side lookups they rest on (``ttl``), and only
        # when no policy involved reads the clock (aws:CurrentTime / aws:EpochTime).
        self._decisions = _Memo(ttl)
        self._clock_free: dict[int, tuple[policies.Policy, bool]] = {}

    def invalidate(self) -> None:
        self._memo.clear()
        self._decisions.clear()

    async def _identity_policies(self, principal: Principal) -> list[policies.Policy]:
        if principal.is_anonymous or not principal.user_id:
            return []
        user = User(id=principal.user_id, account=principal.account, name=principal.name,
                    arn=principal.arn, created_at=0.0)
        texts = list(await self.credentials.policies_for(user))
        if self.policy_dir is not None:
            texts += self.policy_dir.policies_for(principal.account, principal.name)
        return [self.cache.get(text, kind=PolicyKind.IDENTITY, name=name) for name, text in texts]

    async def _resource_side(self, access: AccessRequest) -> tuple[list[policies.Policy],
                                                                  dict[str, str]]:
        parsed = parse_repository_arn(access.resource)
        key = (parsed[1], parsed[2]) if parsed else (access.account, None)
        hit, value = self._memo.get(key)
        if not hit:
            value = await self._load_resource_side(*key)
            self._memo.put(key, value)
        texts, tags = value
        compiled = [self.cache.get(text, kind=PolicyKind.RESOURCE, name=name)
                    for name, text in texts]
        return compiled, tags

    async def _load_resource_side(self, account: str, name: str | None):
        texts: list[tuple[str, str]] = []
        tags: dict[str, str] = {}
        if name is not None:
            repo = await self.metadata.get_repository(account, name)
            if repo is not None:
                if repo.policy_text:
                    texts.append(("repository policy", repo.policy_text))
                tags = dict(await self.metadata.repository_tags(repo.id))
        registry_policy = await self.metadata.get_setting(account, REGISTRY_POLICY)
        if registry_policy:
            texts.append(("registry policy", registry_policy))
        return texts, tags

    def _subject(self, principal: Principal) -> policies.Principal:
        """The policy engine's view of a caller, parsed from its ARN once per process."""
        if principal.is_anonymous:
            return policies.Principal.anonymous()
        key = (principal.arn, principal.user_id, tuple(sorted(principal.tags.items())))
        subject = self._subjects.get(key)
        if subject is None:
            if len(self._subjects) > 10_000:
                self._subjects.clear()
            subject = policies.Principal.from_arn(principal.arn, userid=principal.user_id or None,
                                                  tags=principal.tags or None)
            self._subjects[key] = subject
        return subject

    def _reads_clock(self, compiled: list[policies.Policy]) -> bool:
        for policy in compiled:
            entry = self._clock_free.get(id(policy))
            if entry is None or entry[0] is not policy:  # ids are reused after eviction
                text = policies.dumps(policy).lower()
                entry = (policy, "currenttime" in text or "epochtime" in text)
                if len(self._clock_free) > 10_000:
                    self._clock_free.clear()
                self._clock_free[id(policy)] = entry
            if entry[1]:
                return True
        return False

    async def evaluate(self, access: AccessRequest, *,
                       extra_identity: Sequence[policies.Policy] = (),
                       extra_resource: Sequence[policies.Policy] = (),
                       context: Mapping[str, Any] | None = None) -> Decision:
        """The full decision for ``access``, with the statements that decided it.

        The keyword arguments are for ``berth policy simulate``, which explains what this
        authorizer decides and lets the operator try more on top: policies added to the
        caller's (``extra_identity``) or the resource's (``extra_resource``), and context keys
        that replace the ones computed from the request (``aws:SourceIp``, ...).
        """
        decision, _ = await self._evaluate(access, extra_identity=extra_identity,
                                           extra_resource=extra_resource, overrides=context)
        return decision

    async def _evaluate(self, access: AccessRequest, *,
                        extra_identity: Sequence[policies.Policy] = (),
                        extra_resource: Sequence[policies.Policy] = (),
                        overrides: Mapping[str, Any] | None = None
                        ) -> tuple[Decision, bool]:
        """The decision, and whether it may be reused until the memo expires."""
        principal = access.principal
        identity = [*await self._identity_policies(principal), *extra_identity]
        resource, tags = await self._resource_side(access)
        resource = [*resource, *extra_resource]
        context: dict[str, Any] = {"aws:SecureTransport": "true" if access.secure_transport
                                   else "false"}
        if access.source_ip:
            context["aws:SourceIp"] = access.source_ip
        for key, value in tags.items():
            context[f"aws:ResourceTag/{key}"] = value
            context[f"ecr:ResourceTag/{key}"] = value
        context.update(overrides or {})
        subject = self._subject(principal)
        request = policies.Request(subject, access.action, access.resource, context=context,
                                   resource_account=access.account,
                                   now=datetime.now(timezone.utc))
        decision = policies.evaluate(request, identity, resource)
        return decision, not self._reads_clock(identity) and not self._reads_clock(resource)

    async def decide(self, access: AccessRequest) -> Verdict:
        principal = access.principal
        key = (principal.arn, principal.user_id, access.action, access.resource, access.account,
               access.source_ip, access.secure_transport)
        hit, verdict = self._decisions.get(key)
        if hit:
            return verdict
        decision, reusable = await self._evaluate(access)
        statements = tuple(m.to_json() for m in decision.matched_statements)
        if decision.allowed:
            verdict = Verdict(True, decision.decision, "", statements)
        else:
            verdict = Verdict(False, decision.decision, decision.denial_message(), statements)
        if reusable:
            self._decisions.put(key, verdict)
        return verdict
