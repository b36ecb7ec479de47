"""Loss-limit periods: when the current day and week began, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from supervisor.config import PeriodsConfig

__all__ = ["PERIODS", "day_start", "period_start", "week_start"]

PERIODS = ("day", "week")


def day_start(now: datetime, periods: PeriodsConfig) -> datetime:
    now = now.astimezone(UTC)
    start = now.replace(hour=periods.daily_reset_hour_utc, minute=0, second=0, microsecond=0)
    return start if start <= now else start - timedelta(days=1)


def week_start(now: datetime, periods: PeriodsConfig) -> datetime:
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=(midnight.weekday() - periods.weekly_reset_weekday) % 7)


def period_start(period: str, now: datetime, periods: PeriodsConfig) -> datetime:
    """When the current "day" or "week" began."""
    return day_start(now, periods) if period == "day" else week_start(now, periods)
