"""Property: whatever a client sends to /generate, the answer is JSON and never a 500, and
Gemini is called only with a body that passed validation, byte for byte as it arrived."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.errors import ApiError
from app.schemas import validate_generate_request
from tests.fakes import EVENT, PASSWORD, SECRET_KEY, FakeGemini, app_with

# Any JSON value, nested a little.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Bodies shaped like a request at every level, with wrong types anywhere along the way.
parts = st.lists(
    json_values | st.fixed_dictionaries({"text": st.text(max_size=20) | json_values}),
    max_size=3,
)
contents = st.lists(
    json_values
    | st.fixed_dictionaries({"parts": parts | json_values}, optional={"role": json_values}),
    max_size=3,
)
shaped = st.fixed_dictionaries(
    {"contents": contents | json_values},
    optional={"generationConfig": json_values, "systemInstruction": json_values},
)
# Valid requests, with anything in the fields the proxy does not check.
valid = st.fixed_dictionaries(
    {
        "contents": st.lists(
            st.fixed_dictionaries(
                {"parts": st.lists(st.dictionaries(st.text(max_size=8), json_values), min_size=1)},
                optional={"role": st.text(max_size=8)},
            ),
            min_size=1,
            max_size=3,
        )
    },
    optional={"generationConfig": json_values, "tools": json_values},
)
bodies = st.one_of(
    valid.map(lambda value: json.dumps(value).encode()),
    (shaped | json_values).map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
    # Valid requests with bytes spliced in: broken JSON, broken UTF-8.
    st.tuples(st.integers(0, 60), st.binary(min_size=1, max_size=4)).map(
        lambda cut: (
            b'{"contents":[{"parts":[{"text":"hi"}]}]}'[: cut[0]]
            + cut[1]
            + b'{"contents":[{"parts":[{"text":"hi"}]}]}'[cut[0] :]
        )
    ),
    st.integers(1, 3000).map(lambda depth: b'{"contents":' + b"[" * depth + b"]" * depth + b"}"),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30)
auth = st.sampled_from(
    [
        {"Authorization": f"Bearer {PASSWORD}"},
        {"authorization": f"bearer {PASSWORD}"},
        {"x-api-key": PASSWORD},
        {"Authorization": "Bearer"},
        {"Authorization": PASSWORD},
        {},
    ]
)
odd_headers = st.dictionaries(
    st.sampled_from(["Content-Type", "X-Request-ID", "Accept", "x-goog-api-key", "Authorization"]),
    header_text,
    max_size=3,
)
models = st.none() | st.text(max_size=20)


# Hypothesis runs every example in one test call: one app and fake Gemini serve them all.
GEMINI = FakeGemini(lambda call: [EVENT])
APP = app_with(GEMINI)


def is_valid(raw: bytes) -> bool:
    try:
        validate_generate_request(raw)
    except ApiError:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies, credentials=auth, headers=odd_headers, model=models)
def test_no_input_gives_a_500_or_reaches_gemini_unvalidated(
    raw: bytes, credentials: dict[str, str], headers: dict[str, str], model: str | None
) -> None:
    """4xx JSON for anything refused, with no upstream call; a call only for a valid body."""
    GEMINI.calls.clear()
    query = {} if model is None else {"model": model}
    response = APP.test_client().post(
        "/generate", data=raw, headers={**headers, **credentials}, query_string=query
    )
    assert response.status_code < 500, response.get_data(as_text=True)
    body = json.loads(response.get_data())
    if response.status_code >= 400:
        assert GEMINI.calls == []
        assert body["error"]["code"] == response.status_code
    else:
        assert response.status_code == 200 and body[-1]["is_complete"] is True
        assert GEMINI.bodies == [raw] and is_valid(raw)
    assert SECRET_KEY not in response.get_data(as_text=True)
    event(f"status {response.status_code}")
