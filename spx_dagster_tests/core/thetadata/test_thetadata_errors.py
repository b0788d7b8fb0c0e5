"""Error classes per status code, their messages, and the retry policy's arithmetic."""

from __future__ import annotations

import email.utils
import pickle
import time

import pytest

from spx_dagster.core.thetadata import errors
from spx_dagster.core.thetadata.retry import ClientStats, RetryPolicy, call_with_retries
from spx_dagster.core.thetadata.vendor import STATUS_CODES, Behaviour, Tier

URL = "http://127.0.0.1:25503/v3/option/history/eod?symbol=SPXW"
EXPECTED_CATEGORY = {
    404: "not_implemented",
    410: "wrong_api_version",
    429: "rate_limited",
    470: "general",
    471: "permission",
    472: "no_data",
    473: "invalid_params",
    474: "disconnected",
    475: "terminal_parse",
    476: "wrong_ip",
    477: "page_expired",
    478: "session_conflict",
    570: "large_request",
    571: "server_starting",
    572: "terminal_bug",
}


@pytest.mark.parametrize("code", sorted(c for c in STATUS_CODES if c != 200))
def test_every_vendor_code_has_a_class_category_and_advice(code: int):
    error = errors.error_for_status(code, url=URL, body="detail text")
    vendor = STATUS_CODES[code]
    assert error.status == code and error.url == URL
    assert error.category == EXPECTED_CATEGORY[code]
    assert error.retryable == (
        vendor.behaviour in (Behaviour.RETRY, Behaviour.WAIT_UPSTREAM, Behaviour.REISSUE)
    )
    text = str(error)
    assert str(code) in text and URL in text and vendor.advice in text
    assert "detail text" in text


def test_unknown_5xx_retries_and_other_codes_fail():
    assert errors.error_for_status(503, url=URL).retryable
    assert errors.error_for_status(503, url=URL).category == "server_error"
    unexpected = errors.error_for_status(418, url=URL)
    assert not unexpected.retryable and unexpected.category == "unexpected_status"


def test_permission_names_the_tier():
    error = errors.error_for_status(471, url=URL, required_tier=Tier.STANDARD)
    assert "standard tier" in str(error) and isinstance(error, errors.PermissionDenied)


def test_retry_after_seconds_and_http_date():
    assert errors.error_for_status(429, url=URL, retry_after="7").retry_after_s == 7.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = errors.error_for_status(429, url=URL, retry_after=future).retry_after_s
    assert 25 <= waited <= 31
    assert errors.error_for_status(429, url=URL, retry_after="soon").retry_after_s is None


def test_unreachable_message():
    error = errors.TerminalUnreachable.at("http://127.0.0.1:25503", api_version="v3")
    assert str(error) == (
        "no ThetaTerminal listening at http://127.0.0.1:25503: start ThetaTerminal "
        "(java -jar ThetaTerminalv3.jar) or the built-in simulator (spx-data simulator "
        "--port 25503), or set thetadata.base_url"
    )
    assert error.category == "unreachable"


def test_errors_survive_pickling_with_their_fields():
    error = errors.error_for_status(476, url=URL)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.WrongIp
    assert (copy.status, copy.url, str(copy)) == (476, URL, str(error))


def test_backoff_is_full_jitter_capped_and_honours_retry_after():
    policy = RetryPolicy(max_attempts=6, backoff_max_s=2.0, backoff_base_s=0.5)
    generic = errors.ConnectionLost("x")
    waits = [policy.backoff_s(generic, 5) for _ in range(200)]
    assert all(0 <= w <= 2.0 for w in waits) and max(waits) > 1.0 and min(waits) < 1.0
    assert all(0 <= policy.backoff_s(generic, 1) <= 0.5 for _ in range(50))
    limited = errors.error_for_status(429, url=URL, retry_after="1.5")
    assert policy.backoff_s(limited, 1) == 1.5
    assert policy.backoff_s(errors.error_for_status(429, url=URL, retry_after="90"), 1) == 2.0


def test_attempts_by_cause():
    policy = RetryPolicy(max_attempts=6)
    assert policy.attempts_for(errors.TerminalUnreachable("x")) == 2
    assert policy.attempts_for(errors.GeneralError("x")) == 3
    assert policy.attempts_for(errors.TruncatedResponse("x")) == 6


def test_call_with_retries_retries_only_retryable_errors():
    calls: list[int] = []
    seen: list[str] = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise errors.TruncatedResponse("cut")
        return "done"

    policy = RetryPolicy(max_attempts=5, backoff_max_s=0.001)
    result = call_with_retries(
        flaky, policy=policy, describe="t", on_retry=lambda e, n, s: seen.append(e.category)
    )
    assert result == "done" and len(calls) == 3 and seen == ["truncated", "truncated"]

    calls.clear()

    def permanent():
        calls.append(1)
        raise errors.InvalidParams("bad")

    with pytest.raises(errors.InvalidParams):
        call_with_retries(permanent, policy=policy, describe="t")
    assert len(calls) == 1


def test_call_with_retries_gives_up_after_max_attempts():
    calls: list[int] = []

    def always():
        calls.append(1)
        raise errors.ServerStarting("starting")

    with pytest.raises(errors.ServerStarting):
        call_with_retries(
            always, policy=RetryPolicy(max_attempts=4, backoff_max_s=0.001), describe="t"
        )
    assert len(calls) == 4


def test_stats_are_thread_safe_counters():
    import threading

    stats = ClientStats()

    def bump():
        for _ in range(1000):
            stats.add(requests=1, rows=2)
            stats.retried("rate_limited")

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.requests == 8000 and stats.rows == 16000
    assert stats.retries_by_cause == {"rate_limited": 8000}
    assert stats.snapshot()["requests"] == 8000
    with pytest.raises(KeyError):
        stats.add(nonsense=1)
