"""What of a secret may be shown: URLs with their passwords masked, for logs and errors."""

from __future__ import annotations

import re


def mask_userinfo(text: str) -> str:
    """`scheme://user:secret@host` -> `scheme://user:***@host`, for every URL in `text`
    (a comma-separated list too)."""
    return re.sub(r"(://[^:/@,\s]*):[^@,\s]*@", r"\1:***@", text)
