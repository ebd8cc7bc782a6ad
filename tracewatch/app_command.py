"""``tracewatch app``: the Streamlit dashboard (``app/streamlit_app.py``).

    tracewatch app [--port P] [--data-dir D]

Runs ``streamlit run app/streamlit_app.py`` on 127.0.0.1 (headless, no usage statistics)
with ``TRACEWATCH_DATA_DIR`` set to the store, and returns its exit code.  The dashboard
only reads the store.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8501
APP_SCRIPT = Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"


def add_app_parser(subparsers: Any) -> None:
    """Register ``tracewatch app`` on the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "app", help="the dashboard (Streamlit) on 127.0.0.1",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="store directory (default: $TRACEWATCH_DATA_DIR or ./data)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    parser.set_defaults(handler=run_app)


def build_app_command(port: int) -> list[str]:
    """The ``streamlit run`` command line of the dashboard."""
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
            "--server.port", str(port), "--server.address", "127.0.0.1",
            "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def app_environment(data_dir: Path) -> dict[str, str]:
    """The environment of the dashboard process: ours plus the store directory."""
    return {**os.environ, "TRACEWATCH_DATA_DIR": str(Path(data_dir).resolve())}


def start_app(data_dir: Path, port: int = DEFAULT_PORT) -> subprocess.Popen[bytes]:
    """Start the dashboard in the background (for ``tracewatch demo``)."""
    return subprocess.Popen(build_app_command(port), env=app_environment(data_dir))


def run_app(args: argparse.Namespace) -> int:
    from collector.config import load_collector_config

    data_dir = load_collector_config(data_dir=args.data_dir).data_dir
    print(f"tracewatch dashboard: http://127.0.0.1:{args.port} (store {data_dir})", flush=True)
    process = start_app(data_dir, args.port)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()
