"""How long ago an instant was, as the lists show it (`5s`, `3m`, `2h`, `4d`)."""

from __future__ import annotations

from datetime import datetime


def age_text(stamp: str | None, now: datetime) -> str:
    """`5s`, `3m`, `2h`, `4d` since an ISO-8601 instant; `-` without one, `?` if unreadable."""
    if not stamp:
        return "-"
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    if then.tzinfo is None:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
