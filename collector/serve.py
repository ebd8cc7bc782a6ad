"""The collector's own process: ``python -m collector.serve --config-fd N``.

``tracewatch collector`` validates the configuration (pydantic), then replaces itself with
this module (``exec_collector``: exec, so the pid, stdin/stdout/stderr and the parent stay
the same); ``tracewatch demo`` starts it as a child (``start_collector_process``).  The
validated ``RunConfig`` arrives as JSON through a pipe (never in argv or the environment:
it may hold the auth token).  Why: this process runs for days, and what reading the
configuration loaded is not needed after it (collector.run_config has the figures).

Imports at module level stay minimal: the pipeline workers, spawned by multiprocessing,
import the parent's main module (this one) before they start.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import subprocess
import sys
from typing import NoReturn

from collector.errors import TracewatchError
from collector.run_config import RunConfig

EXIT_INPUT_ERROR = 2
_F_SETPIPE_SZ = 1031  # Linux fcntl: pipe capacity


def exec_collector(config: RunConfig) -> NoReturn:
    """Become ``python -m collector.serve`` with ``config`` (does not return)."""
    read_fd = _config_pipe(config)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, _command(read_fd))


def start_collector_process(config: RunConfig) -> subprocess.Popen[bytes]:
    """Run the collector as a child process (stdout/stderr shared with this one)."""
    read_fd = _config_pipe(config)
    try:
        return subprocess.Popen(_command(read_fd), pass_fds=(read_fd,))
    finally:
        os.close(read_fd)


def _command(read_fd: int) -> list[str]:
    return [sys.executable, "-m", "collector.serve", "--config-fd", str(read_fd)]


def _config_pipe(config: RunConfig) -> int:
    """A pipe already holding ``config`` (and closed for writing); returns its read end."""
    data = config.to_json()
    read_fd, write_fd = os.pipe()
    try:
        if len(data) >= 65536:  # the default capacity: a longer write would block here
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, len(data) + 1)
        os.write(write_fd, data)
    finally:
        os.close(write_fd)
    os.set_inheritable(read_fd, True)
    return read_fd


def _read_config(fd: int) -> RunConfig:
    chunks = []
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    return RunConfig.from_json(b"".join(chunks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.serve",
                                     description="the tracewatch collector (started by `tracewatch collector`)")
    parser.add_argument("--config-fd", type=int, required=True,
                        help="file descriptor to read the validated configuration from")
    args = parser.parse_args(argv)
    config = _read_config(args.config_fd)
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from collector.allocator import choose_allocators

    choose_allocators()  # before pyarrow and deltalake load (set already when exec'd)
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
