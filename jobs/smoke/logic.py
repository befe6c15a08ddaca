"""Pure rules of the smoke pipeline (no pyflink import)."""

from __future__ import annotations

from urllib.parse import urlsplit


def normalize_path(page: str | None) -> str | None:
    """The page path of a URL or path: no scheme/host, query or fragment; lower case; no trailing slash.

    >>> normalize_path("https://Shop.example/Cart/?step=2#top")
    '/cart'
    >>> normalize_path("/")
    '/'
    """
    if page is None:
        return None
    path = urlsplit(page.strip()).path.lower() or "/"
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path
