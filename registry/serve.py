"""Running the server: one process, or N worker processes sharing one port.

Each worker binds the same address with SO_REUSEPORT, so the kernel spreads connections
across them; they share the data directory (SQLite WAL and the blob tree are multi-process
safe). The parent only supervises: it forwards SIGTERM/SIGINT and stops the group when a
worker dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import sys

from registry.config import Config
from registry.datadir import PRIVATE_UMASK, ensure_data_dir
from registry.logs import setup_logging

log = logging.getLogger("registry.serve")


def _run_worker(config: Config, index: int) -> None:
    from registry.app import create_app  # imported after PROMETHEUS_MULTIPROC_DIR is set
    from registry.appkeys import METRICS
    from registry.http_server import run
    from registry.middleware import access_logger_for

    os.umask(PRIVATE_UMASK)  # inherited from serve(); set again so no worker depends on it
    setup_logging(config.log_level)
    logging.getLogger("registry.audit").disabled = not config.auth.audit_log
    app = create_app(config)
    access_log = logging.getLogger("registry.access") if config.server.access_log else None
    # Header, body, idle and lingering timeouts from [server]: see registry/http_server.py.
    run(app, config.server, access_log=access_log,
        access_log_class=access_logger_for(app[METRICS]), shutdown_timeout=5)


def _first_start(config: Config) -> None:
    """On an empty data dir: the default account, an admin and its credentials file."""
    from registry.auth.bootstrap import bootstrap, usage_lines

    result = bootstrap(config)
    if result is None:
        return
    for line in usage_lines(config, result.credentials_path, config.server.listen):
        print(line, file=sys.stderr, flush=True)


def _prepare_metrics_dir(config: Config) -> None:
    path = config.data_dir / "run" / f"prometheus-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def serve(config: Config) -> int:
    # Before anything is created: every file the server, SQLite, prometheus-client or Trivy
    # writes under the data directory is then the owner's alone (registry/datadir.py).
    os.umask(PRIVATE_UMASK)
    setup_logging(config.log_level)
    ensure_data_dir(config.data_dir)
    from registry.metadata.factory import prepare_schema
    from registry.metadata.migrate import SchemaBehindError

    try:
        prepare_schema(config)  # once, before any worker starts
    except SchemaBehindError as exc:
        print(f"berth: {exc}", file=sys.stderr, flush=True)
        return 2
    if config.auth.enabled:
        from registry.auth.keys import MasterKeyError, load_master_keys

        try:
            load_master_keys(config)  # a missing or exposed key stops here, not in a worker
        except MasterKeyError as exc:
            print(f"berth: {exc}", file=sys.stderr, flush=True)
            return 2
        _first_start(config)
    print(f"berth: serving on http://{config.server.listen} with data in {config.data_dir} "
          f"({config.server.workers} worker{'s' if config.server.workers > 1 else ''})",
          file=sys.stderr, flush=True)
    if config.server.workers == 1:
        _run_worker(config, 0)
        return 0
    _prepare_metrics_dir(config)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_run_worker, args=(config, i), name=f"berth-worker-{i}")
               for i in range(config.server.workers)]
    for worker in workers:
        worker.start()

    def stop(signum, _frame) -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid:
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_code = 0
    while any(w.is_alive() for w in workers):
        for worker in workers:
            worker.join(timeout=0.5)
            if worker.exitcode not in (None, 0, -signal.SIGTERM):
                log.error("worker exited", extra={"worker": worker.name,
                                                  "exitcode": worker.exitcode})
                exit_code = 1
                stop(signal.SIGTERM, None)
    return exit_code
