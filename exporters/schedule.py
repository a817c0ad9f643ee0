"""Cron schedules for export jobs, evaluated on the wall clock of a named IANA timezone.

`Schedule.parse("0 2 * * *", "Australia/Melbourne")` is "every night at 2:00 Melbourne time",
whatever Melbourne's offset from UTC is that night. Five fields: minute, hour, day-of-month,
month, day-of-week, each `*`, `n`, `a-b`, `a,b`, `*/n` or `a-b/n`; month names `jan`..`dec`,
weekday names `sun`..`sat` (0 and 7 are both Sunday); and the macros `@hourly`, `@daily`,
`@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`.

Day rule, as in Vixie cron: when day-of-month and day-of-week are both restricted (neither field
starts with `*`), a day matches if EITHER matches (`0 0 13 * fri` fires on every 13th and every
Friday); otherwise both must match (`0 0 */10 * mon` fires on the 1st, 11th, 21st and 31st only
when those are Mondays).

This module only computes instants: it never reads the clock, sleeps or runs anything, so the
caller passes `now` and tests need no fake clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import ConfigError

MACROS: Mapping[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
WEEKDAY_NAMES = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
# Longest each month can be (February in a leap year), to refuse `0 0 31 2 *` at parse time.
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Every schedule that passes `parse` fires at least once in any 40 years: the rarest is a leap
# day restricted to one weekday (`0 0 29 2 *` ANDed with a `*/n` weekday), which can be 40 years
# apart across 2100, not a leap year. The search stops after 50, so it always ends.
SEARCH_YEARS = 50


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    # `*` stops at 6 for day-of-week: 7 is only an alias of Sunday, so `*/2` must not add it.
    star_high: int
    names: Mapping[str, int] = field(default_factory=dict)


FIELDS = (
    _Field("minute", 0, 59, 59),
    _Field("hour", 0, 23, 23),
    _Field("day-of-month", 1, 31, 31),
    _Field("month", 1, 12, 12, MONTH_NAMES),
    _Field("day-of-week", 0, 7, 6, WEEKDAY_NAMES),
)


@dataclass(frozen=True)
class Schedule:
    """A parsed cron schedule; build it with `Schedule.parse`.

    Fire times are local wall-clock times in `timezone`. Where a DST change makes a wall-clock
    time ambiguous, the rules are those cron users expect for a fixed-time job (Vixie cron,
    systemd timers): every matching local time fires exactly once.

    - A local time that does not exist (clocks spring forward over it, e.g. 02:30 on the night
      02:00 becomes 03:00) fires once at the first instant after the gap (03:00 new time): a
      nightly job is not skipped for that day. Several such times (`*/15 2 * * *`) collapse
      into that one run.
    - A local time that happens twice (clocks fall back over it) fires once, at its first
      occurrence (`fold=0`, still on summer time); the repeated hour fires nothing. Unlike Vixie
      cron, this holds for `*/15 * * * *` too, which therefore pauses for that repeated hour.
    """

    expression: str
    timezone: str
    minutes: tuple[int, ...] = field(repr=False)
    hours: tuple[int, ...] = field(repr=False)
    days: tuple[int, ...] = field(repr=False)
    months: tuple[int, ...] = field(repr=False)
    weekdays: tuple[int, ...] = field(repr=False)  # 0 is Sunday, as in cron
    # True when both day fields are restricted and a day matching either one fires.
    day_or: bool = field(repr=False)
    zone: ZoneInfo = field(repr=False, compare=False)

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Schedule:
        """Parse a 5-field cron expression or macro; ConfigError names the bad field."""
        normalized = " ".join(expression.split())
        fields = MACROS.get(normalized.lower(), normalized)
        if fields.startswith("@"):
            raise ConfigError(
                f"cron expression {expression!r}: unknown macro {normalized!r}; "
                f"expected one of {', '.join(MACROS)}"
            )
        parts = fields.split(" ")
        if len(parts) != len(FIELDS):
            raise ConfigError(
                f"cron expression {expression!r}: expected 5 fields (minute hour day-of-month "
                f"month day-of-week), got {len(parts) if normalized else 0}"
            )
        minutes, hours, days, months, weekdays = (
            _parse_field(text, spec, expression) for text, spec in zip(parts, FIELDS, strict=True)
        )
        weekdays = tuple(sorted({day % 7 for day in weekdays}))
        day_or = not parts[2].startswith("*") and not parts[4].startswith("*")
        if not day_or and not any(day <= MONTH_DAYS[m - 1] for m in months for day in days):
            raise ConfigError(
                f"cron expression {expression!r}: day-of-month {parts[2]!r} never occurs in "
                f"month {parts[3]!r}, so the schedule never fires"
            )
        return cls(
            expression=normalized,
            timezone=timezone,
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=weekdays,
            day_or=day_or,
            zone=_zone(timezone),
        )

    def __str__(self) -> str:
        return f"{self.expression} ({self.timezone})"

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (aware), as an aware UTC datetime."""
        _require_aware(moment, "moment")
        # In UTC because == between zones is always False for the second occurrence of a
        # repeated local time (PEP 495).
        moment = moment.astimezone(UTC)
        start = moment.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        # Wall times map to instants in order (a repeated time maps to its first occurrence, a
        # missing one to the end of its gap), so the first candidate past `moment` is the answer.
        # Those before it are the wall times of a repeated hour `moment` is already past.
        for wall in self._wall_times_from(start):
            instant = self._instant(wall)
            if instant > moment:
                return instant
        raise ValueError(f"{self} does not fire within {SEARCH_YEARS} years after {moment}")

    def due(
        self, last_run: datetime | None, now: datetime, *, grace: timedelta = timedelta(minutes=1)
    ) -> bool:
        """Whether a fire time lies in (last_run, now].

        `last_run` is when the job last started (any instant at or after the fire time it served).
        With no last run, only a fire time in (now - grace, now] counts: a job seen for the first
        time runs at its next fire time, not at once for every one it missed before it existed.
        """
        _require_aware(now, "now")
        since = now - grace if last_run is None else last_run
        return self.next_after(since) <= now

    def _wall_times_from(self, start: datetime) -> Iterator[datetime]:
        """Matching local wall times at or after `start`, in order; skips whole months and days."""
        day = start.date()
        # Stop a day short of date.max so that the day after and a UTC conversion cannot overflow.
        limit = date(min(day.year + SEARCH_YEARS, 9999), 12, 30)
        while day <= limit:
            if day.month not in self.months:
                if (day.year, day.month) == (limit.year, 12):
                    break
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
                continue
            if self._day_matches(day):
                for hour in self.hours:
                    if day == start.date() and hour < start.hour:
                        continue
                    for minute in self.minutes:
                        wall = datetime.combine(day, time(hour, minute))
                        if wall >= start:
                            yield wall
            day += timedelta(days=1)

    def _day_matches(self, day: date) -> bool:
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        return in_days or in_weekdays if self.day_or else in_days and in_weekdays

    def _instant(self, wall: datetime) -> datetime:
        """The UTC instant a local wall time fires at, by the DST rules of the class docstring."""
        # fold=0 is the first occurrence of a repeated time.
        instant = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) == wall:
            return instant
        return self._gap_end(wall)

    def _gap_end(self, wall: datetime) -> datetime:
        """The first instant after the spring-forward gap that `wall` falls in."""
        # zoneinfo publishes no transition list, so bisect for it. Read with the offsets from
        # either side of the gap, `wall` gives one instant before the transition and one after.
        # Transitions fall on whole seconds.
        ends = [wall.replace(tzinfo=self.zone, fold=fold).timestamp() for fold in (0, 1)]
        before, after = int(min(ends)), int(max(ends)) + 1
        while after - before > 1:
            middle = (before + after) // 2
            local = datetime.fromtimestamp(middle, self.zone).replace(tzinfo=None)
            if local >= wall:
                after = middle
            else:
                before = middle
        return datetime.fromtimestamp(after, UTC)


def _parse_field(text: str, spec: _Field, expression: str) -> tuple[int, ...]:
    """The values one field allows, sorted; ConfigError names the field and the bad part."""

    def fail(reason: str) -> ConfigError:
        return ConfigError(f"cron expression {expression!r}: {spec.name} field {text!r}: {reason}")

    def value(token: str) -> int:
        number = spec.names.get(token.lower())
        if number is not None:
            return number
        if not (token.isascii() and token.isdigit()):
            allowed = f"a number or a name ({', '.join(spec.names)})" if spec.names else "a number"
            raise fail(f"{token!r} is not {allowed}")
        if not spec.low <= int(token) <= spec.high:
            raise fail(f"{token} is out of range {spec.low}-{spec.high}")
        return int(token)

    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise fail(f"step {step_text!r} in {item!r} must be a positive whole number")
            step = int(step_text)
            if step > spec.high - spec.low + 1:
                raise fail(f"step {step} in {item!r} is larger than the field's whole range")
        if base == "*":
            first, last = spec.low, spec.star_high
        elif "-" in base:
            low_text, _, high_text = base.partition("-")
            first, last = value(low_text), value(high_text)
            if first > last:
                raise fail(f"range {base!r} runs backwards")
        elif slash:
            # Vixie cron reads `5/15` as just 5, other crons as `5-59/15`: refuse the ambiguity.
            raise fail(f"a step needs `*` or a range before it: write '{base}-{spec.high}/{step}'")
        else:
            first = last = value(base)
        values.update(range(first, last + 1, step))
    return tuple(sorted(values))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ConfigError(
            f"timezone {name!r} is not a known IANA timezone (e.g. 'Australia/Melbourne')"
        ) from error


def _require_aware(moment: datetime, name: str) -> None:
    # A naive datetime has no instant: guessing UTC or the host's zone would shift runs by hours.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
