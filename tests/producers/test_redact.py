"""Secret redaction: keys, values, card numbers, configuration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from meterline.producers.redact import REDACTED, Redactor

R = Redactor()


@pytest.mark.parametrize("key", [
    "password", "db_password", "Passwd", "client_secret", "SECRET_KEY", "token", "access_token",
    "refresh-token", "api_key", "apiKey", "X-Api-Key", "Authorization", "bearer", "private_key",
    "credit_card", "card_number", "cvv", "Cookie", "aws_access_key_id",
])
def test_secret_keys_are_replaced_whatever_the_value(key: str) -> None:
    assert R.clean({key: {"nested": 1}}) == {key: REDACTED}


@pytest.mark.parametrize("key", [
    "prompt_tokens", "max_tokens", "input_tokens", "token_count", "tokenizer", "author", "model",
])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert R.clean({key: 5}) == {key: 5}


@pytest.mark.parametrize("text", [
    "Authorization: Bearer eyJhbGciOi.abc-def_ghi",
    "key sk-proj-abcdefghijklmnopqrstuv used",
    "sk-ant-api03-abcdefghijk",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "AKIAABCDEFGHIJKLMNOP",
    "https://host/cb?token=abc123&x=1",
    "password=hunter2",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU",
    "pay with 4111 1111 1111 1111 today",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
])
def test_secret_values_are_replaced_inside_strings(text: str) -> None:
    out = R.text(text)
    assert REDACTED in out
    for secret in ("eyJhbGciOi", "abcdefghijk", "ghp_", "AKIA", "abc123", "hunter2", "4111",
                   "MIIEow"):
        assert secret not in out


def test_digit_runs_that_fail_luhn_and_ordinary_text_are_kept() -> None:
    assert R.text("order 1234 5678 9012 3456 shipped") == "order 1234 5678 9012 3456 shipped"
    assert R.text("it is sunny in 2024") == "it is sunny in 2024"


def test_clean_copies_and_makes_values_json_safe() -> None:
    data = {"a": [{"password": "x"}, ("t",)], "when": datetime(2024, 1, 1, tzinfo=UTC),
            "id": uuid.UUID(int=1), 3: {"x"}}
    out = R.clean(data)
    assert out == {"a": [{"password": REDACTED}, ["t"]], "when": "2024-01-01T00:00:00+00:00",
                   "id": uuid.UUID(int=1).hex, "3": ["x"]}
    assert data["a"][0] == {"password": "x"}  # input untouched


def test_patterns_are_configurable() -> None:
    custom = Redactor(extra_key_patterns=[r"^ssn$"], extra_value_patterns=[r"INTERNAL-\d+"],
                      replacement="***")
    assert custom.clean({"ssn": "1", "note": "see INTERNAL-42", "api_key": "k"}) == {
        "ssn": "***", "note": "see ***", "api_key": "***"}
    only = Redactor(key_patterns=[r"^pin$"], value_patterns=[], card_numbers=False)
    assert only.clean({"pin": 1, "password": "p", "n": "4111111111111111"}) == {
        "pin": REDACTED, "password": "p", "n": "4111111111111111"}
