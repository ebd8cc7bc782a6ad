"""Render chat messages into the ``input_text`` / ``output_text`` columns.

Contract: when a span's input or output comes from a list of chat messages (in any
dialect), the column holds a JSON array text of message objects, in order::

    [{"role": "system", "content": "You are ..."}, {"role": "user", "content": "Hi"}]

Every object has ``role`` and ``content`` (either may be null); ``name``,
``tool_call_id`` and ``tool_calls`` (a list of ``{"id", "name", "arguments"}``) appear only
when the span carries them.  Multi-part content is joined into one string: text parts with
a newline, other parts as a short placeholder such as ``[image]``.  The app detects this
shape (a JSON array of objects with ``role``) to show a conversation; anything else in the
columns is free text (``input.value``, ``traceloop.entity.input``, ...).

Edge cases: an empty message list renders as None (the column stays NULL); a message with
neither role, content nor tool calls is skipped.

``split_index`` splits the ``<index>.<field>`` tail of flattened keys (OpenInference
``llm.input_messages.0.message.role``, GenAI legacy ``gen_ai.prompt.0.content``); the scan
in ``collector.normalise`` does it once per distinct key.  ``group_indexed`` does the same
for nested lists inside one message's fields (``message.tool_calls.0.tool_call.id``).
"""

from __future__ import annotations

from typing import Any

import orjson

from collector.normalise.coerce import dump_json, to_label, to_text

Message = dict[str, Any]
Fields = dict[str, Any]


def make_message(
    role: Any,
    content: Any,
    *,
    name: Any = None,
    tool_call_id: Any = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> Message | None:
    """One message object, or None when it holds nothing worth showing."""
    if (type(role) is str and type(content) is str and role and content
            and name is None and tool_call_id is None and not tool_calls):
        return {"role": role, "content": content}  # the common case, without the checks
    role_text = to_label(role)
    content_text = to_text(content)
    if role_text is None and content_text is None and not tool_calls:
        return None
    message: Message = {"role": role_text, "content": content_text}
    name_text = to_label(name)
    if name_text is not None:
        message["name"] = name_text
    call_id = to_label(tool_call_id)
    if call_id is not None:
        message["tool_call_id"] = call_id
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def make_tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"id": to_label(call_id), "name": to_label(name), "arguments": to_text(arguments)}


def render_messages(messages: list[Message]) -> str | None:
    """The JSON array text described above, or None for no messages."""
    return orjson.dumps(messages, default=str).decode() if messages else None


def render_texts(texts: list[str]) -> str | None:
    """Completion-API prompts or choices (no roles): plain text, blank-line separated."""
    return "\n\n".join(texts) if texts else None


def split_index(tail: str) -> tuple[int, str] | None:
    """``"3.message.role"`` -> ``(3, "message.role")``; None when there is no index."""
    dot = tail.find(".")
    if dot <= 0:
        return None
    head = tail[:dot]
    if not head.isdigit():
        return None
    return int(head), tail[dot + 1 :]


def group_indexed(fields: dict[str, Any], prefix: str) -> dict[int, Fields]:
    """Split ``{"<prefix>0.role": ...}``-like fields into ``{0: {"role": ...}}``.

    Fields without an index are dropped (callers only pass indexed ones).
    """
    grouped: dict[int, Fields] = {}
    for key, value in fields.items():
        parsed = split_index(key[len(prefix) :]) if key.startswith(prefix) else None
        if parsed is not None:
            grouped.setdefault(parsed[0], {})[parsed[1]] = value
    return grouped


def join_parts(parts: list[str]) -> str | None:
    return "\n".join(parts) if parts else None


def describe_part(kind: Any) -> str:
    """Placeholder for a non-text content part (``[image]``, ``[audio]``)."""
    label = to_label(kind) or "part"
    return f"[{label}]"


def render_value(value: Any) -> str | None:
    """Tool results and other structured payloads as text."""
    if isinstance(value, (list, dict)):
        return dump_json(value)
    return to_text(value)
