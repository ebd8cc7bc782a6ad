"""``tracewatch evals judge``: LLM-as-judge groundedness of a sample of RAG traces.

    tracewatch evals judge --base-url URL --model M [--sample 0.1] [--max-traces N]
                           [--seed S] [--input-price USD] [--output-price USD]
                           [--since T] [--until T] [--data-dir D]

Asks an OpenAI-compatible endpoint (phoenix.evals faithfulness evaluator) whether each
sampled trace's answer is grounded in its retrieved documents, and appends the verdicts to
the ``evaluations`` table (source ``llm_judge``).  Traces already judged are skipped.  The
API key is read from $TRACEWATCH_JUDGE_API_KEY only (never from the command line, where it
would show in the process list).  Prices are USD per 1M tokens, for the cost line printed
at the end.  Needs ``pip install arize-phoenix-evals openai``.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from analytics.errors import AnalyticsError


def add_judge_parser(subparsers: Any) -> None:
    """Register ``tracewatch evals judge`` (creates the ``evals`` command group)."""
    evals: argparse.ArgumentParser = subparsers.add_parser(
        "evals", help="evaluators (LLM-as-judge)")
    evals_sub = evals.add_subparsers(dest="evals_command", required=True, metavar="EVALUATOR")
    parser: argparse.ArgumentParser = evals_sub.add_parser(
        "judge", help="judge the groundedness of sampled RAG traces with an LLM",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="store directory (default: $TRACEWATCH_DATA_DIR or ./data)")
    parser.add_argument("--base-url", required=True,
                        help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True, help="judge model name")
    parser.add_argument("--sample", type=float, default=1.0,
                        help="share of unjudged traces to judge, 0..1 (default 1)")
    parser.add_argument("--max-traces", type=int, default=None,
                        help="at most this many judge calls")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--input-price", type=float, default=0.0,
                        help="USD per 1M prompt tokens (cost report)")
    parser.add_argument("--output-price", type=float, default=0.0,
                        help="USD per 1M completion tokens (cost report)")
    parser.add_argument("--since", default=None, help="start (ISO-8601, 'now' or e.g. 24h ago)")
    parser.add_argument("--until", default=None, help="end, exclusive (default: no bound)")
    parser.set_defaults(handler=run_judge)


def run_judge(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from analytics.filters import parse_time
    from analytics.llm_judge import JudgeConfig, judge_store
    from collector.config import load_collector_config

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    since = parse_time(args.since, now) if args.since else None
    until = parse_time(args.until, now) if args.until else None
    try:
        config = JudgeConfig(
            base_url=args.base_url, model=args.model, sample_rate=args.sample,
            max_traces=args.max_traces, seed=args.seed,
            input_price_per_1m=args.input_price, output_price_per_1m=args.output_price,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AnalyticsError(f"bad judge settings: {problems}") from None
    data_dir = load_collector_config(data_dir=args.data_dir).data_dir
    report = judge_store(data_dir, config, since, until)
    estimated = " (estimated)" if report.tokens_estimated else ""
    print(f"judged {report.num_judged} of {report.num_sampled} sampled traces "
          f"({report.num_candidates} unjudged candidates, {report.num_failed} failed); "
          f"tokens {report.prompt_tokens} prompt + {report.completion_tokens} completion"
          f"{estimated}; cost ${report.cost_usd:.6f}")
    return 0
