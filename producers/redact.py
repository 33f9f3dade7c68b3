"""Secret redaction applied to every record before it leaves the agent process.

Two kinds of rule:

- key rules: a mapping key that matches (after lower-casing and turning ``-``, ``.`` and
  spaces into ``_``) has its whole value replaced, whatever its type. The floor is Sentry's
  default scrubbing list (``password``, ``passwd``, ``secret``, ``api_key``, ``apikey``,
  ``auth``, ``credentials``, ``mysql_pwd``, ``privatekey``, ``private_key``, ``token``,
  ``session``, ``csrftoken``, ``sessionid``, ``x_csrftoken``, ``x_forwarded_for``,
  ``set_cookie``, ``cookie``, ``authorization``, ``x_api_key``, ...), plus ``pass``,
  card numbers and provider-specific names;
- value rules: any matching substring of any string (values *and* mapping keys, names,
  error types and messages, ids) is replaced: provider key prefixes, JWTs, PEM private keys,
  URL userinfo, secret query parameters, and the ``key=value`` / ``key: value`` /
  ``"key": "value"`` / ``--key value`` forms of secret-named keys. Digit runs that look like
  card numbers are replaced only when they pass the Luhn check.

All value rules are one precompiled regular expression: a string with no secret costs one
scan, and a replacement happens only on a hit. Redaction also makes payloads JSON-safe:
datetimes, UUIDs, enums, sets, bytes and unknown objects become strings, so a record never
fails to serialise because of what a caller put in ``metadata``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from meterline.schemas import ActionEvent, RawRecord, TelemetryEvent, TrajectoryRecord

REDACTED = "[REDACTED]"

#: Keys whose values are always replaced (searched in the normalised key).
DEFAULT_KEY_PATTERNS: tuple[str, ...] = (
    r"pass(?:word|wd|phrase|code)|(?:^|_)pass(?:$|_)|(?:^|_)pwd(?:$|_)|mysql_pwd",
    r"secret",
    r"(?:^|_)token$|(?:access|refresh|id|auth|api|bearer|session|csrf|xsrf|github|gitlab|slack"
    r"|oauth|personal|private|secret|security|sas)_?token",
    r"api_?key|apikey|access_?key|private_?key|privatekey|secret_?key|signing_?key"
    r"|encryption_?key|master_?key|account_?key|license_?key|client_?key",
    r"authori[sz]ation|(?:^|_)auth(?:$|_)|^x_auth",
    r"credential",
    r"bearer",
    r"credit_?card|card_?number|^pan$|^cvv$|^cvc$",
    r"cookie",
    r"^session$|^sessionid$|^phpsessid$|^connect_sid$|_session$|^session_?(?:key|secret)",
    r"csrf|xsrf",
    r"^x_forwarded_for$|^symfony$|^jwt$",
)

# Free-text rules. Each runs only when one of its trigger substrings occurs in the
# lower-cased text (``in`` is ~30x cheaper per character than a regex scan); regexes run on
# the ASCII-lower-cased copy (same length, so spans map back) unless marked case-sensitive.
#: Substrings of a secret-named key inside free text (the word around it must pass the key
#: rules: ``prompt_tokens=5`` stays, ``db_password=x`` goes).
KEY_CORES: tuple[str, ...] = (
    "pass", "pwd", "secret", "token", "key", "auth", "cred", "session", "cookie",
)
_AUTH_SCHEMES = frozenset(
    ("bearer", "basic", "token", "digest", "negotiate", "ntlm", "apikey", "aws4-hmac-sha256")
)
#: Provider token shapes (case-sensitive), tried where one of their prefixes occurs.
DEFAULT_VALUE_PATTERNS: tuple[str, ...] = (
    r"sk-(?:(?:proj|ant|svcacct|admin|or)-[A-Za-z0-9_\-]{8,}|[A-Za-z0-9_\-]{16,})",
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9+/=]{16,}",
    r"AIza[0-9A-Za-z_\-]{30,}",
    r"hf_[A-Za-z0-9]{30,}|api_org_[A-Za-z0-9]{30,}",
    r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}",
    r"gl(?:pat|ptt|dt|rt|soat|ft|imt|cbt|oas)-[A-Za-z0-9_\-]{20,}",
    r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}(?![0-9A-Za-z])",
    r"xox[abposre]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,}",
    r"npm_[A-Za-z0-9]{36}|pypi-AgE[A-Za-z0-9_\-]{50,}|gsk_[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{50,}",
    r"SG\.[\w-]{16,}\.[\w-]{16,}|r8_[A-Za-z0-9]{30,}|lin_api_[A-Za-z0-9]{30,}",
    r"do[opr]_v1_[a-f0-9]{64}|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}|dapi[a-f0-9]{32}",
    r"ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43}",
    r"eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}",  # JWT
)
#: Lower-cased substrings one of which every provider token above contains.
_TOKEN_TRIGGERS = ("_", "-", "aiza", "akia", "asia", "sg.", "eyj", "dapi", "aroa", "aida")
_PEM = re.compile(
    r"-----begin[a-z0-9 _-]*private key(?: block)?-----[\s\S]*?"
    r"(?:-----end[a-z0-9 _-]*private key(?: block)?-----|$)"
)
_BEARER = re.compile(r"\bbearer\s+([a-z0-9\-._~+/]{8,}=*)")
_BASIC = re.compile(r"\bBasic\s+([A-Za-z0-9+/]{8,}={0,2})")
_USERINFO = re.compile(r"([^\s/:@\"'<>]*:[^\s/@\"'<>]*|[^\s/:@\"'<>]{16,})@")
_SCHEME_BEFORE = re.compile(r"[a-z][a-z0-9+.\-]*$")
_QUERY = re.compile(r"[?&;]([a-z0-9_.\-]{1,64})=([^&#\s\"'<>]+)")
_QUERY_NAMES = frozenset(("key", "sig", "signature", "code", "x-amz-signature",
                          "x-amz-credential", "x-amz-security-token", "x-goog-signature"))
_WEBHOOK = re.compile(
    r"https?://(?:hooks\.slack\.com/(?:services|workflows|triggers)/[a-z0-9_/+\-]+"
    r"|(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]+)"
)
_SHORT = 64  # strings up to this length are cached (at most _SHORT_CACHE of them)
_SHORT_CACHE = 20_000
_HEX_ID = re.compile(r"[0-9a-f]{8,64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_KEYCHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_SEP = re.compile(r"[\"']?(\s*[=:]\s*|\s+)")
_VALUE = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|[^\s&,;\"'<>(){}\[\]]+")
_JSON_BARE = re.compile(r"[^\s,}\]]+")
_LINE = re.compile(r"[^\r\n]+")

# 13-19 digits, optionally grouped by spaces or dashes (checked with Luhn before replacing)
_CARD_RE = re.compile(r"\d(?:[ -]?\d){12,18}")
_DIGIT_GLUE = frozenset("0123456789-")
_DIGITS_TO_0 = bytes.maketrans(b"123456789", b"000000000")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_KEY_NORMALISE = str.maketrans({"-": "_", ".": "_", " ": "_"})
_MAX_DEPTH = 32
_NON_ALPHA = re.compile(r"[^A-Za-z]")


def _has_digit_run(value: str) -> bool:
    """Four digits in a row somewhere (every card number has them): a cheap pre-check."""
    return b"0000" in value.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_0)


def _bounded(s: str, start: int) -> bool:
    """A token starts a word (``xsk-...`` is not an OpenAI key)."""
    return start == 0 or not (s[start - 1].isalnum())


def _splice(s: str, spans: list[tuple[int, int, str]]) -> str:
    """``s`` with each (start, end) replaced; overlapping spans merge into one."""
    spans.sort()
    out, pos = [], 0
    for start, end, repl in spans:
        if start < pos:  # overlaps the previous replacement: extend it
            if end > pos:
                pos = end
            continue
        out.append(s[pos:start])
        out.append(repl)
        pos = end
    out.append(s[pos:])
    return "".join(out)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _looks_secret(value: str) -> bool:
    """For ``key: value`` in prose ("password: reset it") and ``Basic`` + a word: a value is
    taken for a secret when quoted, or when it has a non-letter or an inner capital."""
    if value[:1] in "\"'":
        return True
    return bool(_NON_ALPHA.search(value)) or value[1:] != value[1:].lower()


class Redactor:
    """Replaces secrets in records and nested JSON-like values. Thread-safe.

    ``key_patterns`` / ``value_patterns`` (provider token shapes, case-sensitive) replace the
    defaults; ``extra_key_patterns`` add key rules and ``extra_value_patterns`` add regular
    expressions (case-insensitive) whose whole match is replaced wherever it occurs.
    ``text_rules=False`` turns off the free-text forms (``key=value`` and friends, URL
    userinfo and query parameters, ``Bearer``/``Basic``, webhooks, PEM keys).
    """

    def __init__(
        self,
        *,
        key_patterns: Iterable[str] = DEFAULT_KEY_PATTERNS,
        value_patterns: Iterable[str] = DEFAULT_VALUE_PATTERNS,
        extra_key_patterns: Iterable[str] = (),
        extra_value_patterns: Iterable[str] = (),
        card_numbers: bool = True,
        text_rules: bool = True,
        replacement: str = REDACTED,
    ) -> None:
        keys = [*key_patterns, *extra_key_patterns]
        tokens = list(value_patterns)
        self._key = re.compile("|".join(f"(?:{p})" for p in keys)) if keys else None
        self._tokens = re.compile("|".join(f"(?:{p})" for p in tokens)) if tokens else None
        extra = list(extra_value_patterns)
        self._extra = re.compile("|".join(f"(?:{p})" for p in extra), re.I) if extra else None
        self._cards = card_numbers
        self._text_rules = text_rules
        self.replacement = replacement
        self._key_cache: dict[str, tuple[bool, str]] = {}
        self._secret_keys: dict[str, bool] = {}
        self._short: dict[str, str] = {}

    # -- strings ------------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """Return ``value`` with every secret substring replaced."""
        if len(value) < 5:
            return value
        if len(value) <= _SHORT:  # labels and short values repeat across records: cached
            hit = self._short.get(value)
            if hit is None:
                if _HEX_ID.fullmatch(value) and not value.isdigit():
                    return value  # a hex or UUID id: no rule can match (ids are unique)
                hit = self._text(value)
                if len(self._short) >= _SHORT_CACHE:
                    self._short.clear()
                self._short[value] = hit
            return hit
        return self._text(value)

    def _text(self, value: str) -> str:
        low = value.lower() if value.isascii() else value.translate(_ASCII_LOWER)
        spans: list[tuple[int, int, str]] = []
        if self._text_rules:
            self._text_spans(value, low, spans)
        if self._tokens is not None and any(t in low for t in _TOKEN_TRIGGERS):
            spans.extend((m.start(), m.end(), self.replacement)
                         for m in self._tokens.finditer(value) if _bounded(value, m.start()))
        if self._extra is not None:
            spans.extend((m.start(), m.end(), self.replacement)
                         for m in self._extra.finditer(value))
        if self._cards and len(value) >= 13 and _has_digit_run(value):
            for m in _CARD_RE.finditer(value):
                a, b = m.start(), m.end()
                if (a and (value[a - 1] in _DIGIT_GLUE or value[a - 1].isalnum())) or (
                    b < len(value) and (value[b] in _DIGIT_GLUE or value[b].isalnum())
                ):
                    continue  # part of a longer number or word (a hex id, a timestamp)
                if luhn_ok(re.sub(r"\D", "", m.group())):
                    spans.append((a, b, self.replacement))
        return _splice(value, spans) if spans else value

    def _text_spans(self, s: str, low: str, spans: list[tuple[int, int, str]]) -> None:
        r = self.replacement
        if "-----begin" in low:
            spans.extend((m.start(), m.end(), r) for m in _PEM.finditer(low))
        for core in KEY_CORES:
            i = low.find(core)
            while i >= 0:
                self._key_value(s, low, i, i + len(core), spans)
                i = low.find(core, i + len(core))
        if "bearer" in low:
            spans.extend((m.start(1), m.end(1), r) for m in _BEARER.finditer(low))
        if "basic" in low:
            spans.extend((m.start(1), m.end(1), r) for m in _BASIC.finditer(s)
                         if _looks_secret(m.group(1)))
        if "://" in low:
            if "@" in low:
                i = low.find("://")
                while i >= 0:
                    m = _USERINFO.match(s, i + 3)
                    if m and _SCHEME_BEFORE.search(low, max(0, i - 32), i):
                        spans.append((m.start(1), m.end(1), r))
                    i = low.find("://", i + 3)
            if "hooks.slack.com" in low or "discord" in low:
                spans.extend((m.start(), m.end(), r) for m in _WEBHOOK.finditer(low))
        if "?" in low and "=" in low:
            for m in _QUERY.finditer(low):
                name = m.group(1)
                if name in _QUERY_NAMES or self.is_secret_key(name):
                    spans.append((m.start(2), m.end(2), r))

    def _key_value(
        self, s: str, low: str, i: int, j: int, spans: list[tuple[int, int, str]]
    ) -> None:
        """A secret-named key around ``low[i:j]`` followed by its value: the value's span."""
        ws, we, n = i, j, len(low)
        while ws > 0 and i - ws < 64 and low[ws - 1] in _KEYCHARS:
            ws -= 1
        while we < n and we - j < 64 and low[we] in _KEYCHARS and low[we] != ".":
            we += 1
        while ws < i and low[ws] in "-.":  # "--password": the dashes are the flag, not the key
            ws += 1
        word = low[ws:we]
        if not self.is_secret_key(word):
            return
        sep = _SEP.match(s, we)
        if sep is None:
            return
        quote = s[ws - 1] if ws and s[ws - 1] in "\"'" else ""
        flag = low[max(0, ws - 2):ws] == "--"
        glue = sep.group(1)
        if not glue.strip() and not flag:
            return  # "password is ..." (prose): only flags take a value after a space
        if quote and not ((s[we:we + 1] == quote and ":" in glue) or "=" in glue):
            return
        v = sep.end()
        if quote and s[v:v + 1] not in "\"'":
            m = _JSON_BARE.match(s, v)  # "password": 1234 -> "password": "[REDACTED]"
            if m:
                spans.append((m.start(), m.end(), f'"{self.replacement}"'))
            return
        cookie = word.endswith("cookie") and ":" in glue
        m = _LINE.match(s, v) if cookie else _VALUE.match(s, v)
        if m is None:
            return
        start, end, value = m.start(), m.end(), m.group()
        if value[:1] in "\"'" and len(value) > 1:
            start, end = start + 1, end - 1
        elif word.endswith(("authorization", "authorisation")) and (
            value.lower() in _AUTH_SCHEMES
        ):
            nxt = _VALUE.match(s, end + 1) if s[end:end + 1] == " " else None
            if nxt is not None:
                start, end = nxt.start(), nxt.end()
        elif ":" in glue and not flag and not quote and not _looks_secret(value):
            return  # "password: reset it" in prose
        if end > start:
            spans.append((start, end, self.replacement))

    def has_secret(self, value: str) -> bool:
        """Whether :meth:`text` would change ``value``."""
        return self.text(value) != value

    def ident(self, value: str) -> str:
        """An identifier with a secret in it becomes ``[REDACTED]:<hash>``: the secret is gone
        and equal ids stay equal (joins and dedupe still work)."""
        if self.text(value) == value:
            return value
        digest = hashlib.blake2b(value.encode(), digest_size=8).hexdigest()
        return f"{self.replacement}:{digest}"

    # -- keys ---------------------------------------------------------------------------------

    def is_secret_key(self, key: str) -> bool:
        """Whether a value under ``key`` is replaced whole (the key rules)."""
        hit = self._secret_keys.get(key)
        if hit is None:
            norm = key.lower().translate(_KEY_NORMALISE)
            hit = bool(self._key and self._key.search(norm))
            if len(self._secret_keys) < 10_000:
                self._secret_keys[key] = hit
        return hit

    def _key_info(self, key: str) -> tuple[bool, str]:
        """(whether the key's value is a secret, the key itself with secrets replaced)."""
        hit = self._key_cache.get(key)
        if hit is None:
            hit = (self.is_secret_key(key), self.text(key))
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = hit
        return hit

    # -- structures ---------------------------------------------------------------------------

    def clean(self, value: Any, _depth: int = 0) -> Any:
        """A redacted, JSON-safe copy of ``value`` (the input is never modified)."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if _depth >= _MAX_DEPTH:
            return "[TRUNCATED]"
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                secret, key = self._key_info(k if isinstance(k, str) else str(k))
                if key in out:  # two keys redacted to the same text: keep both values
                    key = f"{key}#{len(out)}"
                out[key] = self.replacement if secret else self.clean(v, _depth + 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return [self.clean(v, _depth + 1) for v in value]
        return self.text(_to_text(value))

    def mapping(self, value: Mapping[str, Any] | None) -> dict[str, Any]:
        return self.clean(value) if value else {}  # type: ignore[no-any-return]

    def optional_text(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def record(self, record: RawRecord) -> RawRecord:
        """``record`` with every string field redacted: ids (:meth:`ident`), names, types,
        error messages, ``properties`` and ``metadata`` (keys and values)."""
        update: dict[str, Any] = {"metadata": self.mapping(record.metadata)}
        if not isinstance(record, TrajectoryRecord):
            update["properties"] = self.mapping(record.properties)
        for name in _TEXT_FIELDS[type(record)]:
            value = getattr(record, name)
            if value is not None:
                new = self.text(value)
                if new is not value:
                    update[name] = new
        for name in _ID_FIELDS[type(record)]:
            value = getattr(record, name)
            if value is not None:
                new = self.ident(value)
                if new is not value:
                    update[name] = new
        return record.model_copy(update=update)

    def encoded(self, value: bytes) -> bytes:
        """Serialised bytes with secrets replaced: a JSON object is redacted as a structure
        (key rules apply), anything else as text. Unchanged bytes are returned as they are."""
        text = value.decode("utf-8", "surrogateescape")
        if self.text(text) == text and not self._has_secret_key(text):
            return value
        try:
            data = json.loads(text)
        except ValueError:
            return self.text(text).encode("utf-8", "surrogateescape")
        out = json.dumps(self.clean(data), ensure_ascii=False, separators=(",", ":"))
        return out.encode("utf-8", "surrogateescape")

    def _has_secret_key(self, text: str) -> bool:
        return any(self.is_secret_key(k) for k in _JSON_KEY.findall(text))


_JSON_KEY = re.compile(r"\"([^\"\\]{1,64})\"\s*:")
_TEXT_FIELDS: dict[type, tuple[str, ...]] = {
    ActionEvent: ("name", "error_type", "error_message", "model", "provider", "source"),
    TelemetryEvent: ("event_type", "source"),
    TrajectoryRecord: (),
}
_COMMON_IDS = ("event_id", "trace_id", "session_id", "user_id", "anonymous_id", "agent_id")
_ID_FIELDS: dict[type, tuple[str, ...]] = {
    ActionEvent: (*_COMMON_IDS, "parent_event_id"),
    TelemetryEvent: (*_COMMON_IDS, "trajectory_id"),
    TrajectoryRecord: ("trace_id", "trajectory_id", "user_id", "anonymous_id", "agent_id"),
}


def _to_text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)


DEFAULT_REDACTOR = Redactor()
