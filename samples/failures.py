"""Failure modes of the sample services and the varied wording of their errors.

Contract:
- ``FAILURE_MODES`` lists the labels written to ``ground_truth`` (``failure_mode`` per trace).
- Each ``make_*_error`` returns an ``ErrorText`` (exception type, message, stack trace) whose
  wording varies with the provider and with random numbers (limits, retry delays, token counts,
  request ids), so that no mode is recognisable by one fixed string.
- Errors are recorded on spans as an ``exception`` event plus status ERROR, as the OpenTelemetry
  SDK's ``record_exception`` does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)

from samples.otlp_json import encode_event

EMPTY_RETRIEVAL = "empty_retrieval"
IRRELEVANT_RETRIEVAL = "irrelevant_retrieval"
UNSUPPORTED_CLAIM = "unsupported_claim"
HALLUCINATED_CITATION = "hallucinated_citation"
PROVIDER_TIMEOUT = "provider_timeout"
RATE_LIMITED = "rate_limited"
MODEL_FALLBACK = "model_fallback"
JSON_SCHEMA_INVALID = "json_schema_invalid"
TOOL_CALL_ERROR = "tool_call_error"
REFUSAL = "refusal"
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
RETRY_LOOP = "retry_loop"

FAILURE_MODES = (
    EMPTY_RETRIEVAL,
    IRRELEVANT_RETRIEVAL,
    UNSUPPORTED_CLAIM,
    HALLUCINATED_CITATION,
    PROVIDER_TIMEOUT,
    RATE_LIMITED,
    MODEL_FALLBACK,
    JSON_SCHEMA_INVALID,
    TOOL_CALL_ERROR,
    REFUSAL,
    CONTEXT_LENGTH_EXCEEDED,
    RETRY_LOOP,
)


@dataclass(frozen=True, slots=True)
class ErrorText:
    """What an instrumentation records for one exception."""

    exception_type: str
    message: str
    stacktrace: str


def exception_event(time_ns: int, error: ErrorText) -> dict[str, object]:
    """Return the OTLP/JSON ``exception`` span event for an error."""
    return encode_event(
        "exception",
        time_ns,
        {
            EXCEPTION_TYPE: error.exception_type,
            EXCEPTION_MESSAGE: error.message,
            EXCEPTION_STACKTRACE: error.stacktrace,
        },
    )


_OPENAI_ORG = "org-5qL9vNimbusPr0d"


def pick_failure_mode(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str | None:
    """Draw one failure mode from (mode, probability) pairs; None for a clean trace."""
    r = rng.random()
    for mode, p in table:
        if r < p:
            return mode
        r -= p
    return None


def _request_id(rng: random.Random) -> str:
    return f"req_{rng.getrandbits(96):024x}"


def _stack(rng: random.Random, frames: tuple[tuple[str, str], ...], error: str) -> str:
    lines = ["Traceback (most recent call last):"]
    for path, call in frames:
        lines.append(f'  File "{path}", line {rng.randint(40, 900)}, in {call}')
    lines.append(error)
    return "\n".join(lines)


_CLIENT_FRAMES = {
    "openai": (("/app/.venv/lib/python3.12/site-packages/openai/_base_client.py", "request"),),
    "anthropic": (
        ("/app/.venv/lib/python3.12/site-packages/anthropic/_base_client.py", "request"),
    ),
    "google": (("/app/.venv/lib/python3.12/site-packages/google/genai/_api_client.py", "request"),),
    "internal": (
        ("/app/.venv/lib/python3.12/site-packages/httpx/_transports/default.py", "handle_request"),
    ),
}


def _frames(rng: random.Random, provider: str, caller: str) -> tuple[tuple[str, str], ...]:
    return (
        (f"/app/src/{caller}.py", rng.choice(("run", "invoke", "_call_model", "answer"))),
        *_CLIENT_FRAMES.get(provider, _CLIENT_FRAMES["internal"]),
    )


def make_timeout_error(rng: random.Random, provider: str, caller: str, timeout_s: int) -> ErrorText:
    """A provider call that did not answer in time."""
    options = {
        "openai": [
            ("openai.APITimeoutError", "Request timed out."),
            ("httpx.ReadTimeout", "The read operation timed out"),
        ],
        "anthropic": [
            ("anthropic.APITimeoutError", "Request timed out."),
            ("httpx.ReadTimeout", f"timed out after {timeout_s}.0s waiting for response"),
        ],
        "google": [("google.api_core.exceptions.DeadlineExceeded", "504 Deadline Exceeded")],
        "internal": [("httpx.ReadTimeout", f"read timeout={timeout_s}.0")],
    }
    etype, msg = rng.choice(options.get(provider, options["internal"]))
    return ErrorText(etype, msg, _stack(rng, _frames(rng, provider, caller), f"{etype}: {msg}"))


def make_rate_limit_error(rng: random.Random, provider: str, model: str, caller: str) -> ErrorText:
    """A 429 from the provider."""
    limit = rng.choice((30_000, 200_000, 450_000, 800_000))
    used = limit - rng.randint(50, 4000)
    wait_ms = rng.randint(120, 9000)
    if provider == "openai":
        unit = rng.choice(("tokens per min (TPM)", "requests per min (RPM)"))
        msg = (
            f"Error code: 429 - {{'error': {{'message': 'Rate limit reached for {model} in "
            f"organization {_OPENAI_ORG} on {unit}: Limit {limit}, Used {used}, "
            f"Requested {rng.randint(300, 6000)}. Please try again in {wait_ms}ms.', "
            f"'type': '{'tokens' if 'TPM' in unit else 'requests'}', 'code': 'rate_limit_exceeded'}}}}"
        )
        etype = "openai.RateLimitError"
    elif provider == "anthropic":
        what = rng.choice(("input tokens", "output tokens", "requests"))
        msg = (
            f"Error code: 429 - {{'type': 'error', 'error': {{'type': 'rate_limit_error', "
            f"'message': 'This request would exceed the rate limit for your organization of "
            f"{limit:,} {what} per minute.'}}, 'request_id': '{_request_id(rng)}'}}"
        )
        etype = "anthropic.RateLimitError"
    elif provider == "google":
        msg = (
            "429 Resource has been exhausted (e.g. check quota). quota_metric: "
            "generativelanguage.googleapis.com/generate_content_requests"
        )
        etype = "google.api_core.exceptions.ResourceExhausted"
    else:
        msg = f"429 Too Many Requests: queue full ({rng.randint(64, 512)} pending)"
        etype = "httpx.HTTPStatusError"
    return ErrorText(etype, msg, _stack(rng, _frames(rng, provider, caller), f"{etype}: {msg}"))


def make_server_error(rng: random.Random, provider: str, caller: str) -> ErrorText:
    """A 5xx / overloaded response, as during a provider outage."""
    options = {
        "openai": [
            (
                "openai.InternalServerError",
                "Error code: 503 - {'error': {'message': 'The server is "
                "overloaded or not ready yet.', 'type': 'server_error'}}",
            ),
            (
                "openai.InternalServerError",
                "Error code: 500 - {'error': {'message': 'The server had "
                "an error while processing your request. Sorry about that!', 'type': 'server_error'}}",
            ),
            ("openai.APIStatusError", "Error code: 502 - Bad gateway."),
            ("openai.APIConnectionError", "Connection error."),
        ],
        "anthropic": [
            (
                "anthropic.InternalServerError",
                "Error code: 529 - {'type': 'error', 'error': "
                "{'type': 'overloaded_error', 'message': 'Overloaded'}}",
            ),
            (
                "anthropic.InternalServerError",
                "Error code: 500 - {'type': 'error', 'error': "
                "{'type': 'api_error', 'message': 'Internal server error'}}",
            ),
        ],
        "google": [
            (
                "google.api_core.exceptions.ServiceUnavailable",
                "503 The service is currently unavailable.",
            )
        ],
        "internal": [
            (
                "httpx.HTTPStatusError",
                "Server error '503 Service Unavailable' for url "
                "'http://acme-llm.inference.svc:8080/v1/chat/completions'",
            )
        ],
    }
    etype, msg = rng.choice(options.get(provider, options["internal"]))
    return ErrorText(etype, msg, _stack(rng, _frames(rng, provider, caller), f"{etype}: {msg}"))


def make_context_length_error(
    rng: random.Random, provider: str, limit: int, requested: int, caller: str
) -> ErrorText:
    """The prompt does not fit in the model's context window."""
    if provider == "openai":
        etype = "openai.BadRequestError"
        msg = (
            f"Error code: 400 - {{'error': {{'message': \"This model's maximum context length is "
            f"{limit} tokens. However, your messages resulted in {requested} tokens. Please reduce "
            f"the length of the messages.\", 'type': 'invalid_request_error', 'param': 'messages', "
            f"'code': 'context_length_exceeded'}}}}"
        )
    elif provider == "anthropic":
        etype = "anthropic.BadRequestError"
        msg = (
            f"Error code: 400 - {{'type': 'error', 'error': {{'type': 'invalid_request_error', "
            f"'message': 'prompt is too long: {requested} tokens > {limit} maximum'}}}}"
        )
    elif provider == "google":
        etype = "google.api_core.exceptions.InvalidArgument"
        msg = (
            f"400 The input token count ({requested}) exceeds the maximum number of tokens "
            f"allowed ({limit})."
        )
    else:
        etype = "ValueError"
        msg = f"Input length {requested} exceeds max_model_len={limit}"
    return ErrorText(etype, msg, _stack(rng, _frames(rng, provider, caller), f"{etype}: {msg}"))


def make_schema_error(rng: random.Random, problem: str, field: str, bad_value: str) -> ErrorText:
    """The model's JSON did not validate: ``problem`` is "missing", "type" or "truncated"."""
    if problem == "missing":
        etype, msg = rng.choice(
            (
                ("jsonschema.exceptions.ValidationError", f"'{field}' is a required property"),
                (
                    "pydantic_core._pydantic_core.ValidationError",
                    f"1 validation error for Extraction\n{field}\n  Field required [type=missing, "
                    f"input_value={{...}}, input_type=dict]",
                ),
            )
        )
    elif problem == "type":
        etype, msg = rng.choice(
            (
                ("jsonschema.exceptions.ValidationError", f"'{bad_value}' is not of type 'number'"),
                (
                    "pydantic_core._pydantic_core.ValidationError",
                    f"1 validation error for Extraction\n{field}\n  Input should be a valid number, "
                    f"unable to parse string as a number [type=float_parsing, input_value='{bad_value}', "
                    f"input_type=str]",
                ),
            )
        )
    else:
        col = int(bad_value) if bad_value.isdigit() else rng.randint(80, 400)
        etype, msg = (
            "json.decoder.JSONDecodeError",
            rng.choice(
                (
                    f"Expecting ',' delimiter: line 1 column {col} (char {col - 1})",
                    f"Unterminated string starting at: line 1 column {col} (char {col - 1})",
                    f"Expecting value: line 1 column {col} (char {col - 1})",
                )
            ),
        )
    frames = (
        ("/app/src/extract/validate.py", "validate_output"),
        ("/app/.venv/lib/python3.12/site-packages/jsonschema/validators.py", "validate"),
    )
    return ErrorText(etype, msg, _stack(rng, frames, f"{etype}: {msg}"))


def make_tool_error(rng: random.Random, tool: str, argument: str) -> ErrorText:
    """A tool the agent called raised."""
    host = rng.choice(("orders.internal", "shipping-api.internal", "crm.internal:8443"))
    options = (
        (
            "requests.exceptions.ConnectionError",
            f"HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded with url: "
            f"/v1/{tool} (Caused by NewConnectionError('Failed to establish a new connection: "
            f"[Errno 111] Connection refused'))",
        ),
        ("TimeoutError", f"{tool} did not respond within {rng.choice((5, 10, 15, 30))}s"),
        ("KeyError", f"'{rng.choice(('order_id', 'tracking_number', 'customer', 'items'))}'"),
        ("ValueError", f"invalid identifier {argument!r} for {tool}"),
        ("LookupError", f"no customer record matches {argument!r}"),
        (
            "PermissionError",
            f"403 Forbidden: service token lacks scope "
            f"'{rng.choice(('orders:write', 'refunds:create', 'crm:read'))}'",
        ),
        (
            "requests.exceptions.HTTPError",
            f"500 Server Error: Internal Server Error for url: https://{host}/v1/{tool}",
        ),
    )
    etype, msg = rng.choice(options)
    frames = ((f"/app/agent/tools/{tool}.py", tool), ("/app/agent/runtime.py", "call_tool"))
    return ErrorText(etype, msg, _stack(rng, frames, f"{etype}: {msg}"))


REFUSAL_ANSWERS = (
    "I'm sorry, but I can't help with that request.",
    "I can't assist with accessing someone else's account. If you believe your account was "
    "compromised, please contact support through the verified owner email.",
    "Sorry - that's not something I'm able to do. I can only help with questions about your own "
    "Nimbus workspace.",
    "I won't be able to share that information. For security reasons, account data is only "
    "disclosed to the verified owner.",
    "Unfortunately I can't do that. Bypassing two-factor authentication isn't supported, even "
    "for admins.",
    "I'm not able to help with this one, but our security team can review the request if you "
    "open a ticket.",
)
