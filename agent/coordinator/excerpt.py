"""What of Jenkins' answers goes into logs, ``/api/coordinators`` and ``status``: a short line.

Jenkins answers an uncaught exception (a missing parameter, bad JSON) with an
HTML error page, and a proxy in front of it may answer with its own: such a
page is cut to its ``<title>``, never dumped whole. Everything else is one
line, white space collapsed, at most ``EXCERPT`` characters.
"""

from __future__ import annotations

import html
import re

EXCERPT = 2000
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_HTML = re.compile(r"^\s*(<!doctype html|<html|<head|<\?xml)", re.IGNORECASE)


def excerpt(text: str) -> str:
    """``text`` on one line, cut to ``EXCERPT`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def page(body: str) -> str:
    """An answer's body for a message: an HTML page as its title, else ``excerpt``."""
    if not _HTML.match(body):
        return excerpt(body)
    title = _TITLE.search(body)
    if title is None:
        return "an HTML page without a title"
    return f"an HTML page titled {excerpt(html.unescape(title.group(1)))!r}"
