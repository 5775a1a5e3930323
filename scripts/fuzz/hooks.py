"""Schemathesis hooks for scripts/fuzz-api.sh.

- `error_envelope`: a check that every 4xx and 5xx is JSON in the API's one error envelope, and that a 429 says
  when to retry.
- `event_stream_ends`: a check that every `text/event-stream` answer ends, with `data: [DONE]`, within the
  request timeout (schemathesis reads a stream until then and validates what it got, but does not fail on it).
- Realistic data: some generated values are swapped for ones that exist (seeded by the script and listed in
  FUZZ_SEED_FILE): path ids of chats and answers, a chat-list cursor, a chat id and an offered model in turns.
  Random UUIDs, cursors and model names are all refused before a handler does any work; with known ones the
  rest of a generated request (search words, message text, ...) reaches the database and the model.
- Limits pass (FUZZ_PASS=limits): turns are always ones the server accepts, so that only the per-user limits
  refuse them.
- Counts: every request sent is tallied by operation and status, and written to FUZZ_COUNTS_FILE at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import uuid
from collections import Counter, defaultdict

import schemathesis
from hypothesis import strategies as st

_lock = threading.Lock()
_statuses: defaultdict[str, Counter[int]] = defaultdict(Counter)


def _load_seed() -> dict[str, list[str]]:
    path = os.environ.get("FUZZ_SEED_FILE")
    if not path:
        return {}
    with open(path, encoding="utf-8") as seed:
        return json.load(seed)


# Ids that exist when the run starts: chats to read and change, chats that may be deleted, answers to poll.
_SEED = _load_seed()


def _write_counts() -> None:
    path = os.environ.get("FUZZ_COUNTS_FILE")
    if not path:
        return
    with _lock:
        counts = {label: {str(code): n for code, n in sorted(codes.items())} for label, codes in _statuses.items()}
    # Several passes append to one file; the summary adds them up per pass.
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"pass": os.environ.get("FUZZ_PASS", "main"), "counts": counts}) + "\n")


atexit.register(_write_counts)


@schemathesis.hook
def after_call(context, case, response):
    with _lock:
        _statuses[case.operation.label][response.status_code] += 1


def _pool_for(context) -> list[str]:
    operation = context.operation
    if operation is None:
        return []
    if operation.path.startswith("/api/generations/"):
        return _SEED.get("generations", [])
    if operation.method.upper() == "DELETE":
        return _SEED.get("deletable_chats", [])
    return _SEED.get("chats", [])


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _sometimes_known(values, key: str, pool: list[str], *, only_if=lambda value: True):
    """`values` as generated, or with `key` set to one of `pool` (when `key` is there and passes `only_if`)."""
    if not pool or not isinstance(values, dict) or key not in values or not only_if(values[key]):
        return st.just(values)
    return st.one_of(st.just(values), st.sampled_from(pool).map(lambda known: {**values, key: known}))


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    # Only valid ids are swapped: invalid ones are the negative cases and must reach the server as generated.
    return _sometimes_known(path_parameters, "id", _pool_for(context), only_if=_is_uuid)


@schemathesis.hook
def flatmap_query(context, query):
    if context.operation is not None and context.operation.label == "GET /api/chats":
        return _sometimes_known(query, "cursor", _SEED.get("chat_cursors", []))
    return st.just(query)


# Turns the server accepts: a new chat and a message with some printable text.
_ACCEPTABLE_TURNS = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "message": st.text(st.characters(codec="utf-8", exclude_categories=["C"]), min_size=1, max_size=200).filter(
            str.strip
        ),
    }
)


@schemathesis.hook
def flatmap_body(context, body):
    if context.operation is None or context.operation.label != "POST /api/chat":
        return st.just(body)
    if os.environ.get("FUZZ_PASS") == "limits":
        # This pass is about the per-user limits, so every turn must be one they alone can refuse.
        return _ACCEPTABLE_TURNS
    with_model = _sometimes_known(body, "model", _SEED.get("models", []))
    return with_model.flatmap(lambda b: _sometimes_known(b, "id", _SEED.get("chats", []), only_if=_is_uuid))


def _fail(message: str):
    raise AssertionError(message)


@schemathesis.check
def error_envelope(ctx, response, case):
    """Every error is `{"error":{"code":"...","message":"..."}}` as JSON; a 429 also carries Retry-After."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.lower().startswith("application/json"):
        _fail(f"{response.status_code} answered with Content-Type `{content_type or 'none'}`, not the JSON envelope")
    try:
        body = json.loads(response.content)
    except ValueError:
        _fail(f"{response.status_code} body is not JSON: {response.content[:200]!r}")
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    is_envelope = isinstance(body, dict) and set(body) == {"error"}
    if not is_envelope or not isinstance(code, str) or not code or not isinstance(message, str) or not message:
        _fail(f"{response.status_code} body is not the error envelope: {json.dumps(body)[:200]}")
    if response.status_code == 429:
        if code != "rate_limited":
            _fail(f"429 with code `{code}`, expected `rate_limited`")
        retry_after = (response.headers.get("retry-after") or [""])[0]
        if not retry_after.isdigit() or int(retry_after) < 1:
            _fail(f"429 without a usable Retry-After header (got `{retry_after}`)")
    return None


@schemathesis.check
def event_stream_ends(ctx, response, case):
    """An event stream ends, with `data: [DONE]` as its last event, before the request timeout."""
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.lower().startswith("text/event-stream"):
        return None
    if response.stream_cut_short:
        _fail("the event stream did not end within the request timeout")
    data_lines = [line for line in response.content.splitlines() if line.startswith(b"data:")]
    if not data_lines or data_lines[-1].strip() != b"data: [DONE]":
        _fail(f"the event stream did not end with `data: [DONE]`: {response.content[-200:]!r}")
    return None
