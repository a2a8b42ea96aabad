"""The X API's answers when it refuses: problem JSON (RFC 7807 ``title``, ``detail``, ``type``,
plus ``errors[].message``), said in one line; the usage cap told apart.

Source: X API v2 "Error and problem types" (``https://api.twitter.com/2/problems/...``) and the
``Problem`` schema of X's OpenAPI specs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

USAGE_CAPPED = "https://api.twitter.com/2/problems/usage-capped"


class XApiError(RuntimeError):
    """The X API refused or kept failing; the message names the endpoint, day, page and status,
    with the API's problem ``title``, ``detail`` and ``type``."""


class AccessDenied(XApiError):
    """403: the project's access level or the authentication used does not allow the endpoint
    (X API v2 "Error and problem types": ``client-forbidden``, ``unsupported-authentication``);
    asking again cannot help."""


class UsageCapExceeded(XApiError):
    """429 with problem type ``https://api.twitter.com/2/problems/usage-capped``: the project's
    monthly post cap is used up; retrying cannot help before the cap resets."""


def problem(response) -> dict:
    """The API's problem JSON of ``response`` (a dict; ``{}`` when the body is not a JSON object)."""
    try:
        body = response.json()
    except Exception:  # not JSON: no problem details
        return {}
    return body if isinstance(body, dict) else {}


def usage_capped(exc: BaseException) -> bool:
    """True for a 429 whose problem is ``usage-capped`` (type, or title ``UsageCapExceeded``)."""
    found = problem(getattr(exc, "response", None))
    return found.get("type") == USAGE_CAPPED or found.get("title") == "UsageCapExceeded"


def describe_response(response) -> str:
    """``HTTP <status> <reason>: <title>: <detail> (type <type>); errors: …`` of an answer."""
    text = f"HTTP {response.status_code} {getattr(response, 'reason', '') or ''}".strip()
    found = problem(response)
    title, detail, kind = (found.get(k) for k in ("title", "detail", "type"))
    if title:
        text += f": {title}"
    if detail and detail != title:
        text += f": {detail}"
    if kind:
        text += f" (type {kind})"
    messages = [e.get("message") for e in found.get("errors") or [] if isinstance(e, dict) and e.get("message")]
    if messages:
        text += "; errors: " + "; ".join(str(m) for m in messages[:3])
    return text


def describe(exc: BaseException) -> str:
    """:func:`describe_response` for an HTTP error, else the exception's class and message (a
    timeout, a dropped connection; a proxy that cannot be reached is named, without credentials)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None and isinstance(exc, requests.exceptions.ProxyError):
        return f"ProxyError: cannot reach the HTTP(S) proxy {proxy_named(exc)}; check it is up, or unset HTTPS_PROXY/https_proxy (and ALL_PROXY) to connect directly"
    if status is None:
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return describe_response(response)


def proxy_named(exc: BaseException) -> str:
    """``host:port`` of the proxy the failed request went through (from the environment, as
    requests chose it), without any user:password part; or the variables to look at."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None) or "https://api.x.com/"
    try:
        proxies = requests.utils.get_environ_proxies(url)
        proxy = requests.utils.select_proxy(url, proxies)
    except Exception:  # noqa: BLE001 - naming the proxy must never hide the real error
        proxy = None
    if not proxy:
        return "(see HTTPS_PROXY/https_proxy)"
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"
