"""Times as Nova's API shows them (``created_at``, ``launched_at``)."""

import datetime


def api_time(stamp):
    """Seconds since the epoch of an API timestamp (UTC, ``Z`` or not)."""
    return datetime.datetime.fromisoformat(stamp.rstrip('Z')).replace(
        tzinfo=datetime.timezone.utc).timestamp()
