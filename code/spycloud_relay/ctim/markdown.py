"""Markdown for the dashboard's tiles and the sync's incidents: SpyCloud's strings as text, and
links to its portal only.

An e-mail, a breach title or a site comes from SpyCloud (and so from whoever fed a breach) and
goes into markdown a browser renders: ``![p](https://...)`` would load an image, ``<img
onerror=...>`` or ``<script>`` run in a renderer that lets HTML through, ``[t](javascript:...)``
be a link. Every value a tile or an incident shows goes through ``text``; the only link is
``portal_link``'s. Pure.
"""

import re
import unicodedata

from spycloud_relay.spycloud.models import PORTAL_ID

# Everything markdown (CommonMark, GFM tables and strikethrough) or HTML reads as markup:
# a backslash makes each one the character itself. ':' breaks ``https://`` autolinks.
SPECIAL = re.compile(r'([\\`*_{}\[\]()<>#+!|~&:$])')
# A ``www.`` autolink (GFM) starts at the dot.
WWW = re.compile(r'(www)\.', re.IGNORECASE)


def text(value: object) -> str:
    """``value`` as markdown that shows exactly its characters, on one line: control and
    format characters (line breaks, bidi overrides) are dropped, runs of white space are one."""
    plain = ''.join(
        ' ' if ch.isspace() else ch
        for ch in str(value)
        if ch.isspace() or unicodedata.category(ch) not in ('Cc', 'Cf')
    )
    return WWW.sub(r'\1\\.', SPECIAL.sub(r'\\\1', ' '.join(plain.split())))


def portal_link(label: str, ui_url: str, uuid: str | None) -> str:
    """``label`` (markdown already) linked to the source's page on SpyCloud's portal
    (SPYCLOUD_UI_URL); unlinked when the uuid is missing or holds more than letters, digits and
    dashes, so the link never leaves the portal."""
    if not uuid or not PORTAL_ID.fullmatch(uuid):
        return label
    return f'[{label}]({ui_url.format(uuid=uuid)})'
