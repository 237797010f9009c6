"""Berth's configuration: one typed, frozen tree, validated once.

``load_config(path, environ)`` reads an optional TOML file, then applies ``BERTH_*``
environment overrides and CLI overrides. Unknown keys in the file and bad values anywhere are
errors, and all of them are reported together in one ``ConfigError``. A ``BERTH_*`` variable
that names no key is only warned about, by name: the environment is shared with other tools
(test harnesses, wrappers), and a stray variable must not stop a server.

Example file::

    region = "us-east-1"
    data_dir = "/var/lib/berth"

    [server]
    listen = "127.0.0.1:5000"
    workers = 2
    header_timeout_seconds = 30
    body_timeout_seconds = 60
    keepalive_timeout_seconds = 75
    linger_seconds = 5

    [uploads]
    stale_after_seconds = 86400

    [gc]
    interval_seconds = 3600
    grace_seconds = 3600

    [keys]
    key_file = "/etc/berth/master.key"
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from registry.addresses import a_kind_of_address, literal_refusal

DEFAULT_ACCOUNT = "000000000000"


class ConfigError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:5000"
    workers: int = 1
    access_log: bool = True
    # Half-sent requests must not hold connections or memory (registry/http_server.py):
    # request line and headers complete within this many seconds of their first byte,
    header_timeout_seconds: int = 30
    # at most this long between two bytes of a body,
    body_timeout_seconds: int = 60
    # an idle keep-alive connection (or one that never sends a byte) closes after this,
    keepalive_timeout_seconds: int = 75
    # and after an early answer (a 401 to a large upload) the unread rest of a body is read
    # and dropped for at most this long, so the client sees the answer, then the connection
    # closes.
    linger_seconds: int = 5

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


@dataclass(frozen=True)
class StorageConfig:
    # "filesystem": blobs under the data directory (the embedded default). "s3": blobs in an
    # S3-compatible bucket shared by every node (AWS S3, Ceph RGW, MinIO, ...).
    backend: str = "filesystem"
    bucket: str = ""
    endpoint_url: str = ""  # empty: AWS's endpoint for `region`
    region: str = ""  # empty: the registry's `region`
    prefix: str = ""  # every key starts with it ("berth/")
    # Credentials come from the standard AWS chain (environment, shared files, instance
    # role), optionally a named profile of it, optionally from this credentials file (0600).
    profile: str = ""
    credentials_file: str = ""
    # Blob GETs answered 307 to a presigned URL of the object (the bytes never pass through
    # Berth), or streamed through Berth when false.
    pull_redirect: bool = True
    presign_seconds: int = 900
    part_size_bytes: int = 16 * 1024 * 1024  # multipart part size for uploads (>= 5 MiB)
    # Periodic re-hash of every blob in the server (0 = off); corrupt blobs are quarantined
    # as by `berth fsck --repair`. The read rate is capped so pushes are not starved.
    scrub_interval_seconds: int = 0
    scrub_bytes_per_second: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class MetadataConfig:
    # Empty: SQLite in the data directory (the embedded default). Else a database URL,
    # "postgresql://user[:password]@host:port/dbname", shared by every Berth node.
    url: str = field(default="", repr=False)
    # Connections (and database threads) per process on PostgreSQL.
    pool_size: int = 10
    # "auto": `berth serve` brings the schema up to date itself (under a lock, so concurrent
    # starts never race); "manual": it refuses to start until `berth db upgrade` ran.
    # Empty: auto on SQLite, manual on PostgreSQL (an operator upgrades a shared database).
    upgrade: str = ""

    @property
    def backend(self) -> str:
        return "postgresql" if self.url.startswith(("postgresql://", "postgres://")) else "sqlite"

    @property
    def auto_upgrade(self) -> bool:
        return self.upgrade == "auto" or (not self.upgrade and self.backend == "sqlite")


@dataclass(frozen=True)
class UploadsConfig:
    stale_after_seconds: int = 24 * 3600
    cleanup_interval_seconds: int = 3600
    # Caps on open sessions (0 = unlimited). With auth disabled every caller is the one
    # anonymous principal, so the per-principal cap is then a cap on the whole registry.
    max_sessions_per_repository: int = 1000
    max_sessions_per_principal: int = 2000


@dataclass(frozen=True)
class GCConfig:
    enabled: bool = True
    interval_seconds: int = 3600
    grace_seconds: int = 3600


@dataclass(frozen=True)
class NodesConfig:
    # Every process is a node: it heartbeats every `heartbeat_seconds` (database clock); a
    # node silent for `timeout_seconds` is dead and the jobs it held replay elsewhere at once.
    heartbeat_seconds: int = 5
    timeout_seconds: int = 30


@dataclass(frozen=True)
class AuthConfig:
    # Off only for benchmarks and protocol tests: then every request is allowed.
    enabled: bool = True
    # Identity policies as files: <policy_dir>/<account>/<user>/<policy>.json, hot-reloaded.
    policy_dir: str = ""
    policy_reload_seconds: int = 2
    token_ttl_seconds: int = 12 * 3600
    audit_log: bool = True


@dataclass(frozen=True)
class KeysConfig:
    # The master key: 32 random bytes in a file of mode 0600 (registry/auth/keys.py). Empty:
    # <data>/master.key, created on first start (one node). Several nodes name the same key,
    # copied to each (`berth keys generate PATH` makes one); serve never creates it.
    key_file: str = ""
    # Keys still accepted to open stored secrets and verify registry tokens, while
    # `berth keys rotate` re-seals every secret under key_file.
    previous_key_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScannerConfig:
    enabled: bool = True
    trivy_path: str = ""  # empty: the trivy installed next to this Python, else on PATH
    concurrency: int = 1
    timeout_seconds: int = 300
    # The vulnerability DB is an OCI artifact in the default account's registry.
    db_repository: str = "aquasec/trivy-db"
    db_tag: str = "2"
    db_check_seconds: int = 30


@dataclass(frozen=True)
class WebhookConfig:
    url: str = ""
    name: str = ""
    secret: str = field(default="", repr=False)
    secret_file: str = ""
    events: tuple[str, ...] = ("ECR Image Action", "ECR Image Scan")
    repositories: tuple[str, ...] = ("*",)
    timeout_seconds: int = 10
    # Deliveries to loopback, link-local or private addresses are refused without this.
    allow_private_network: bool = False


@dataclass(frozen=True)
class LimitsConfig:
    manifest_max_bytes: int = 4 * 1024 * 1024
    small_blob_cache_bytes: int = 64 * 1024 * 1024
    small_blob_max_bytes: int = 256 * 1024


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("berth-data")
    region: str = "us-east-1"
    default_account: str = DEFAULT_ACCOUNT
    log_level: str = "info"
    # ECR answers NAME_UNKNOWN for a push to a missing repository; a self-hosted registry
    # is friendlier creating it (ECR's CREATE_ON_PUSH template does the same).
    create_on_push: bool = True
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    uploads: UploadsConfig = field(default_factory=UploadsConfig)
    gc: GCConfig = field(default_factory=GCConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    webhooks: tuple[WebhookConfig, ...] = ()
    nodes: NodesConfig = field(default_factory=NodesConfig)

    @property
    def metadata_path(self) -> Path:
        return self.data_dir / "metadata.db"


_BACKENDS = {"storage": {"filesystem", "s3"}}
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
# Every interval and duration, in seconds: (key, minimum, maximum, why the minimum). Intervals
# are at least 1 s, so no loop ever spins; the maxima keep every deadline representable.
DURATIONS: tuple[tuple[str, int, int, str], ...] = (
    ("uploads.stale_after_seconds", _MINUTE, 30 * _DAY,
     "a shorter age would remove uploads still in progress"),
    ("uploads.cleanup_interval_seconds", 1, _DAY, ""),
    ("gc.interval_seconds", _MINUTE, 30 * _DAY,
     "each pass walks every blob; set gc.enabled = false to turn it off"),
    ("gc.grace_seconds", _MINUTE, 30 * _DAY,
     "a shorter grace would collect layers of a push before its manifest arrives"),
    ("auth.policy_reload_seconds", 1, _DAY, ""),
    ("auth.token_ttl_seconds", _MINUTE, 12 * _HOUR, "ECR's tokens last 12 hours at most"),
    ("scanner.timeout_seconds", 1, _DAY, ""),
    ("scanner.db_check_seconds", 1, _DAY, ""),
    # A timeout of 0 would mean "never" to aiohttp, so none may be 0 except lingering, where
    # 0 means "close at once".
    ("server.header_timeout_seconds", 1, _HOUR, ""),
    ("server.body_timeout_seconds", 1, _HOUR, ""),
    ("server.keepalive_timeout_seconds", 1, _HOUR, ""),
    ("server.linger_seconds", 0, 60, ""),
    ("storage.scrub_interval_seconds", 0, 366 * _DAY, "0 turns the periodic scrub off"),
    ("storage.presign_seconds", 1, 7 * _DAY, ""),  # S3 caps presigned URLs at 7 days
    ("nodes.heartbeat_seconds", 1, _MINUTE, ""),
    ("nodes.timeout_seconds", 3, _HOUR,
     "a node must miss a few heartbeats before it counts as dead"),
)
_LOG_LEVELS = {"debug", "info", "warning", "error"}
_ENV_PREFIX = "BERTH_"


def _convert(value: Any, kind: Any, path: str, problems: list[str]) -> Any:
    if kind in (int, "int"):
        if isinstance(value, bool):
            problems.append(f"{path}: expected an integer, got {value!r}")
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            problems.append(f"{path}: expected an integer, got {value!r}")
            return None
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        problems.append(f"{path}: expected a boolean, got {value!r}")
        return None
    if kind in (Path, "Path"):
        return Path(str(value))
    if kind == "tuple[str, ...]":
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{path}: expected a list of strings")
            return None
        return tuple(value)
    if not isinstance(value, str):
        problems.append(f"{path}: expected a string, got {value!r}")
        return None
    return value


def _build(cls: type, raw: Mapping[str, Any], path: str, problems: list[str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}{key}"
        f = fields.get(key)
        if f is None:
            problems.append(f"{where}: unknown key")
            continue
        if key == "webhooks" and cls is Config:
            if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
                problems.append(f"{where}: expected a list of tables ([[webhooks]])")
                continue
            kwargs[key] = tuple(_build(WebhookConfig, v, f"{where}[{i}].", problems)
                                for i, v in enumerate(value))
            continue
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            if not isinstance(value, Mapping):
                problems.append(f"{where}: expected a table")
                continue
            kwargs[key] = _build(f.default_factory, value, where + ".", problems)  # type: ignore[arg-type]
            continue
        converted = _convert(value, f.type, where, problems)
        if converted is not None:
            kwargs[key] = converted
    return cls(**kwargs)


def _deep_set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _validate(config: Config, problems: list[str]) -> None:
    if config.storage.backend not in _BACKENDS["storage"]:
        problems.append(f"storage.backend: unknown backend {config.storage.backend!r}")
    _validate_metadata(config, problems)
    _validate_keys(config, problems)
    if not re.fullmatch(r"[0-9]{12}", config.default_account):
        problems.append("default_account: must be a 12-digit account id")
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", config.region):
        problems.append(f"region: not a region name: {config.region!r}")
    if config.log_level not in _LOG_LEVELS:
        problems.append(f"log_level: one of {sorted(_LOG_LEVELS)}")
    listen = config.server.listen
    if not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\s]+):[0-9]{1,5}", listen) or not 0 <= int(listen.rsplit(":", 1)[1]) <= 65535:
        problems.append(f"server.listen: expected HOST:PORT, got {listen!r}")
    for i, hook in enumerate(config.webhooks):
        if not re.match(r"^https?://", hook.url):
            problems.append(f"webhooks[{i}].url: expected an http(s) URL")
        elif not hook.allow_private_network:
            try:
                host = urlsplit(hook.url).hostname or ""
            except ValueError:  # e.g. an unclosed "[" of an IPv6 literal
                problems.append(f"webhooks[{i}].url: not a valid URL")
                host = ""
            why = literal_refusal(host)
            if why is not None:
                problems.append(f"webhooks[{i}].url: {host} is {a_kind_of_address(why)}; set "
                                "allow_private_network = true for this endpoint to deliver "
                                "there")
        if bool(hook.secret) == bool(hook.secret_file):
            problems.append(f"webhooks[{i}]: set exactly one of secret and secret_file")
        if not hook.events or not set(hook.events) <= {"ECR Image Action", "ECR Image Scan"}:
            problems.append(f"webhooks[{i}].events: a non-empty subset of "
                            "['ECR Image Action', 'ECR Image Scan']")
        if not 0 < hook.timeout_seconds <= 60:
            problems.append(f"webhooks[{i}].timeout_seconds: between 1 and 60")
        for pattern in hook.repositories:
            if not re.fullmatch(r"[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*", pattern):
                problems.append(f"webhooks[{i}].repositories: invalid filter {pattern!r}")
    names = [hook.name or hook.url for hook in config.webhooks]
    if len(set(names)) != len(names):
        problems.append("webhooks: endpoint names (default: the URL) must be unique")
    if not 1 <= config.scanner.concurrency <= 16:
        problems.append("scanner.concurrency: between 1 and 16")
    if not 1 <= config.server.workers <= 64:
        problems.append("server.workers: between 1 and 64")
    if config.nodes.timeout_seconds < 2 * config.nodes.heartbeat_seconds:
        problems.append("nodes.timeout_seconds: at least twice nodes.heartbeat_seconds")
    _validate_integrity(config, problems)
    _validate_s3(config.storage, problems)
    for name, value in (("limits.manifest_max_bytes", config.limits.manifest_max_bytes),
                        ("limits.small_blob_cache_bytes", config.limits.small_blob_cache_bytes),
                        ("limits.small_blob_max_bytes", config.limits.small_blob_max_bytes)):
        if value < 0:
            problems.append(f"{name}: must not be negative")
    for name, low, high, why in DURATIONS:
        section, key = name.split(".")
        value = getattr(getattr(config, section), key)
        if not low <= value <= high:
            problems.append(f"{name}: between {low} and {high} seconds, got {value}"
                            + (f" ({why})" if why and value < low else ""))


def _settable(dotted: str) -> bool:
    """Whether an environment variable may set ``dotted``: a plain key at the top level or
    in a section (``[[webhooks]]`` tables cannot come from the environment)."""
    head, _, rest = dotted.partition(".")
    fields = {f.name: f for f in dataclasses.fields(Config)}
    f = fields.get(head)
    if f is None or head == "webhooks":
        return False
    section = f.default_factory if f.default_factory is not dataclasses.MISSING else None
    if not dataclasses.is_dataclass(section):
        return not rest
    return rest in {g.name for g in dataclasses.fields(section)}


def _stderr_warning(message: str) -> None:
    print(f"berth: warning: {message}", file=sys.stderr, flush=True)



def _validate_metadata(config: Config, problems: list[str]) -> None:
    metadata = config.metadata
    if metadata.url and metadata.backend != "postgresql":
        # Never echo the URL: it may hold a password.
        problems.append("metadata.url: expected postgresql://user@host:port/dbname "
                        "(leave it empty for SQLite in the data directory)")
    if not 1 <= metadata.pool_size <= 200:
        problems.append("metadata.pool_size: between 1 and 200")
    if metadata.upgrade not in ("", "auto", "manual"):
        problems.append("metadata.upgrade: \"auto\" or \"manual\"")


def _validate_s3(storage: StorageConfig, problems: list[str]) -> None:
    if storage.backend != "s3":
        return
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", storage.bucket):
        problems.append("storage.bucket: an S3 bucket name (3-63 of a-z 0-9 . -) is required "
                        "with backend = \"s3\"")
    if storage.endpoint_url and not re.fullmatch(r"https?://[^\s/]+/?", storage.endpoint_url):
        problems.append("storage.endpoint_url: http(s)://host[:port]")
    if storage.region and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]|[a-z0-9-]{1,32}",
                                           storage.region):
        problems.append(f"storage.region: not a region name: {storage.region!r}")
    if storage.prefix.startswith("/") or "//" in storage.prefix or \
            any(c in storage.prefix for c in "\r\n\x00"):
        problems.append("storage.prefix: a key prefix without a leading '/' or empty parts")
    if not 5 * 1024 * 1024 <= storage.part_size_bytes <= 5 * 1024 ** 3:
        problems.append("storage.part_size_bytes: between 5 MiB and 5 GiB (S3's part sizes)")


def _validate_keys(config: Config, problems: list[str]) -> None:
    # Only the names here: the files are read (and their size and mode checked) where the
    # keys are loaded, registry/auth/keys.py, which reports a missing or exposed file.
    keys = config.keys
    if keys.key_file != keys.key_file.strip():
        problems.append("keys.key_file: a path without surrounding spaces")
    seen = {os.path.normpath(keys.key_file)} if keys.key_file.strip() else set()
    for path in keys.previous_key_files:
        if not path.strip() or path != path.strip():
            problems.append(f"keys.previous_key_files: {path!r} is not a path")
            continue
        normal = os.path.normpath(path)
        if normal in seen:
            problems.append(f"keys.previous_key_files: {path} is listed twice, or is "
                            "keys.key_file itself")
        seen.add(normal)


def _validate_integrity(config: Config, problems: list[str]) -> None:
    storage, uploads = config.storage, config.uploads
    if not 1024 * 1024 <= storage.scrub_bytes_per_second <= 1 << 40:
        problems.append("storage.scrub_bytes_per_second: between 1048576 (1 MiB/s) and 2^40")
    for name in ("max_sessions_per_repository", "max_sessions_per_principal"):
        if not 0 <= getattr(uploads, name) <= 1_000_000:
            problems.append(f"uploads.{name}: 0 (unlimited) or up to 1000000")


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
    *,
    warn: Callable[[str], None] = _stderr_warning,
) -> Config:
    """Build the configuration from a TOML file, ``BERTH_*`` variables and overrides.

    Environment variables name keys with ``__`` between levels:
    ``BERTH_SERVER__WORKERS=2``, ``BERTH_DATA_DIR=/srv/berth``. ``overrides`` use dotted
    keys (``{"server.listen": "127.0.0.1:5001"}``) and win over both. ``BERTH_*`` variables
    that name no key are ignored and reported in one ``warn`` call (default: a line on
    stderr), so a typo is visible without stopping anything.

    Raises:
        ConfigError: every problem found, together.
    """
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    unknown = []
    for key, value in environ.items():
        # BERTH_TEST_* belong to the test suite (which backend, which registry), never config.
        if key.startswith(_ENV_PREFIX) and len(key) > len(_ENV_PREFIX) \
                and not key.startswith("BERTH_TEST_"):
            dotted = key[len(_ENV_PREFIX):].lower().replace("__", ".")
            if _settable(dotted):
                _deep_set(raw, dotted, value)
            else:
                unknown.append(key)
    if unknown:
        warn("ignoring environment variables that name no configuration key: "
             + ", ".join(sorted(unknown)))
    for key, value in (overrides or {}).items():
        if value is not None:
            _deep_set(raw, key, value)
    config = _build(Config, raw, "", problems)
    _validate(config, problems)
    if problems:
        raise ConfigError(problems)
    return config
