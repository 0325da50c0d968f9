"""The one retry policy: transient store failures only, exponential backoff, bounded.
Everything else fails at once. `call_with_retry` retries one call (with jitter); `backoff` is
the same wait for loops that count their own failures and never give up (the daemon waiting
out an outage, a failed index build, a reader that crashed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_exponential_jitter,
)

from docsync.plugin.errors import StoreUnavailableError

T = TypeVar("T")
log = logging.getLogger("docsync.retry")


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("store call failed (%s); retry %d in %.1fs", exc, state.attempt_number, wait)


def call_with_retry(
    fn: Callable[[], T], *, attempts: int, initial: float = 0.5, maximum: float = 8.0
) -> T:
    """Run `fn`, retrying `StoreUnavailableError` up to `attempts` tries in all."""
    if attempts <= 1:
        # One try is the call itself: tenacity's machinery took 0.1-0.25 ms a call, on
        # every search of an in-process store (measured on 2 cores, issue 27).
        return fn()
    retrying = Retrying(
        retry=retry_if_exception_type(StoreUnavailableError),
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(fn)


def backoff(failures: int, *, first: float, maximum: float) -> float:
    """Seconds to wait after `failures` failures in a row: `first`, doubled after each, at
    most `maximum`. tenacity's exponential wait, which also stays bounded after a thousand
    failures (where `2 ** failures` overflows a float): a long outage must not end a daemon."""
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(1, failures)
    return float(wait_exponential(multiplier=first, max=maximum)(state))
