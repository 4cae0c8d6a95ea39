"""Reaching a human on escalate: a local command or a webhook.

A page that does not go out raises :class:`PageError` (the field named, the cause given).
The caller sets the human hold *before* paging, so a failed page leaves model changes
frozen: the safe side (fail closed).
"""

import json
import subprocess
from collections.abc import Sequence
from typing import Any

from steward.errors import ConfigError
from steward.simulators.operations import Page


class PageError(ConfigError):
    """A page that did not reach anyone."""


def page_payload(service: str, page: Page) -> dict[str, Any]:
    """What a page says (JSON)."""
    return {
        "service": service,
        "time_days": page.time_days,
        "reason": page.reason,
        "live_version": page.live_version,
        "acknowledge": "a human answers with the backend's acknowledge (it lifts the hold)",
    }


class CommandPager:
    """Runs a command with the page as JSON on its standard input.

    Args:
        argv: the command and its arguments (no shell).
        service: the service's name (in the page).
        timeout_s: seconds the command may take.
    """

    def __init__(self, argv: Sequence[str], service: str, timeout_s: float = 10.0) -> None:
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ConfigError(
                "backend.escalation.command",
                "must be a non-empty list of strings",
                "e.g. [notify-send]",
            )
        self.argv = list(argv)
        self.service = service
        self.timeout_s = timeout_s

    def page(self, page: Page) -> None:
        """Run the command; raise :class:`PageError` unless it exits 0 in time."""
        body = json.dumps(page_payload(self.service, page))
        field = "backend.escalation.command"
        try:
            done = subprocess.run(
                self.argv, input=body, text=True, capture_output=True, timeout=self.timeout_s
            )
        except FileNotFoundError:
            raise PageError(
                field, "not found", "name an executable on PATH", self.argv[0]
            ) from None
        except subprocess.TimeoutExpired:
            raise PageError(
                field, f"took over {self.timeout_s:g} s", "make the command return promptly"
            ) from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [""])[-1]
            raise PageError(
                field,
                f"exited {done.returncode} ({last})" if last else f"exited {done.returncode}",
                "fix the command; the hold stays on until a human acknowledges",
                self.argv[0],
            )


class WebhookPager:
    """POSTs the page as JSON to a URL.

    Args:
        url: the webhook.
        service: the service's name (in the page).
        timeout_s: seconds the request may take.
        token: sent as ``Authorization: Bearer TOKEN`` when given.
    """

    def __init__(self, url: str, service: str, timeout_s: float = 10.0, token: str = "") -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(
                "backend.escalation.webhook",
                "must be an http(s) URL",
                "e.g. https://host/hook",
                url,
            )
        self.url = url
        self.service = service
        self.timeout_s = timeout_s
        self.token = token

    def page(self, page: Page) -> None:
        """POST the page; raise :class:`PageError` unless the answer is 2xx."""
        import httpx

        field = "backend.escalation.webhook"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            answer = httpx.post(
                self.url,
                json=page_payload(self.service, page),
                headers=headers,
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as err:
            raise PageError(
                field,
                f"unreachable ({type(err).__name__}: {err})",
                "check the URL and the receiver",
                self.url,
            ) from None
        if not 200 <= answer.status_code < 300:
            raise PageError(
                field,
                f"answered {answer.status_code}",
                "check the receiver; the hold stays on until a human acknowledges",
                self.url,
            )


def make_pager(
    service: str,
    command: Sequence[str] | None = None,
    webhook: str | None = None,
    timeout_s: float = 10.0,
    token: str = "",
) -> CommandPager | WebhookPager | None:
    """The pager a config names (``None``: neither; the hold still applies)."""
    if command and webhook:
        raise ConfigError(
            "backend.escalation", "names both a command and a webhook", "keep one of them"
        )
    if command:
        return CommandPager(list(command), service, timeout_s)
    if webhook:
        return WebhookPager(webhook, service, timeout_s, token)
    return None
