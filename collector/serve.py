"""The collector's own process: ``python -m collector.serve --config-fd N``.

``tracewatch collector`` validates the configuration (pydantic), then replaces itself with
this module (``exec_collector``: exec, so the pid, stdin/stdout/stderr and the parent stay
the same); ``tracewatch demo`` starts it as a child (``start_collector_process``).  The
validated ``RunConfig`` arrives as JSON in an anonymous in-memory file whose descriptor
the process inherits (never in argv or the environment: it may hold the auth token).
Why: this process runs for days, and what reading the configuration loaded is not needed
after it (collector.run_config has the figures).

Imports at module level stay minimal: the pipeline workers, spawned by multiprocessing,
import the parent's main module (this one) before they start.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from typing import NoReturn

from collector.errors import TracewatchError
from collector.run_config import RunConfig

EXIT_INPUT_ERROR = 2


def exec_collector(config: RunConfig) -> NoReturn:
    """Become ``python -m collector.serve`` with ``config`` (does not return)."""
    config_fd = _config_file(config)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, _command(config_fd))


def start_collector_process(config: RunConfig) -> subprocess.Popen[bytes]:
    """Run the collector as a child process (stdout/stderr shared with this one)."""
    config_fd = _config_file(config)
    try:
        return subprocess.Popen(_command(config_fd), pass_fds=(config_fd,))
    finally:
        os.close(config_fd)


def _command(config_fd: int) -> list[str]:
    # -P: the current directory stays off sys.path (`-m` would put it first, so a
    # collector/ or collector.py where the command runs would be imported instead of ours).
    return [sys.executable, "-P", "-m", "collector.serve", "--config-fd", str(config_fd)]


def _config_file(config: RunConfig) -> int:
    """An inheritable descriptor of an anonymous file holding ``config``, at its start.

    A file in memory, not a pipe: a pipe's capacity can be a page or two (pipe-user-pages-
    soft), and the only reader is this process after exec, so a longer write would block for
    good.  Nothing reaches the disk, argv or the environment (the auth token is in it)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("tracewatch-config", 0)
    else:  # not Linux: an unlinked temporary file
        with tempfile.TemporaryFile() as temporary:
            fd = os.dup(temporary.fileno())
    try:
        os.write(fd, config.to_json())
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_inheritable(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_config(fd: int) -> RunConfig:
    with os.fdopen(fd, "rb") as source:
        return RunConfig.from_json(source.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.serve",
                                     description="the tracewatch collector (started by `tracewatch collector`)")
    parser.add_argument("--config-fd", type=int, required=True,
                        help="descriptor of the validated configuration (RunConfig JSON)")
    args = parser.parse_args(argv)
    config = _read_config(args.config_fd)
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Presidio logs every recognizer it loads (redaction in this process: workers = 0).
    for noisy in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from collector.allocator import choose_allocators

    choose_allocators()  # before pyarrow and deltalake load
    from collector.server import run_collector

    def announce(endpoints: dict[str, str]) -> None:
        print(
            f"tracewatch collector ready: http=http://{endpoints['http']} "
            f"grpc={endpoints.get('grpc', 'off')} data={endpoints['data_dir']}",
            flush=True,
        )

    try:
        run_collector(config, announce)
    except TracewatchError as exc:
        print(f"tracewatch: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
