"""Cron schedules in a named timezone: parsing, next fire times across DST changes, `due`.

Pure units: every instant is passed in, nothing reads the clock or sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from exporters.schedule import Schedule
from gateway.errors import ConfigError

MELBOURNE = ZoneInfo("Australia/Melbourne")
NEW_YORK = ZoneInfo("America/New_York")
OSLO = ZoneInfo("Europe/Oslo")
HOUR = timedelta(hours=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fields(schedule: Schedule) -> tuple[tuple[int, ...], ...]:
    return (
        schedule.minutes,
        schedule.hours,
        schedule.days,
        schedule.months,
        schedule.weekdays,
    )


def fire_times(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    times = []
    for _ in range(count):
        after = schedule.next_after(after)
        times.append(after)
    return times


def offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    result = moment.astimezone(zone).utcoffset()
    assert result is not None
    return result


def transitions(zone: ZoneInfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """(UTC instant, offset before, offset after) of each offset change in `year`, by zoneinfo.

    Hour by hour is enough: every transition of the zones tested falls on a whole UTC hour.
    """
    found = []
    moment = utc(year, 1, 1)
    while moment.year == year:
        before, after = offset(zone, moment - HOUR), offset(zone, moment)
        if before != after:
            found.append((moment, before, after))
        moment += HOUR
    return found


# --- parsing -------------------------------------------------------------------------------

ALL_MINUTES = tuple(range(60))
ALL_HOURS = tuple(range(24))
ALL_DAYS = tuple(range(1, 32))
ALL_MONTHS = tuple(range(1, 13))
ALL_WEEKDAYS = tuple(range(7))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("* * * * *", (ALL_MINUTES, ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("5 4 3 2 1", ((5,), (4,), (3,), (2,), (1,))),
        ("1-3 22-23 * * *", ((1, 2, 3), (22, 23), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("0,30,15 0,12 1,15 * *", ((0, 15, 30), (0, 12), (1, 15), ALL_MONTHS, ALL_WEEKDAYS)),
        (
            "*/15 */6 */10 */3 *",
            ((0, 15, 30, 45), (0, 6, 12, 18), (1, 11, 21, 31), (1, 4, 7, 10), ALL_WEEKDAYS),
        ),
        ("10-30/10 1-5/2 * * *", ((10, 20, 30), (1, 3, 5), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
        ("0 0 * jan,MAR-may,Dec *", ((0,), (0,), ALL_DAYS, (1, 3, 4, 5, 12), ALL_WEEKDAYS)),
        ("0 0 * * mon-fri", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (1, 2, 3, 4, 5))),
        ("0 0 * * Sun", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (0,))),
        ("0 0 * * 7", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (0,))),
        ("0 0 * * 5-7", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (0, 5, 6))),
        ("0 0 * * */2", ((0,), (0,), ALL_DAYS, ALL_MONTHS, (0, 2, 4, 6))),
        ("  0\t2  *  * * ", ((0,), (2,), ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS)),
    ],
)
def test_parse_expands_each_field(expression: str, expected: tuple[tuple[int, ...], ...]) -> None:
    assert fields(Schedule.parse(expression)) == expected


@pytest.mark.parametrize(
    ("macro", "equivalent"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_macros(macro: str, equivalent: str) -> None:
    schedule = Schedule.parse(macro)
    assert fields(schedule) == fields(Schedule.parse(equivalent))
    assert schedule.day_or is False


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("", "expected 5 fields .*, got 0"),
        ("@reboot", "unknown macro '@reboot'"),
        ("60 * * * *", r"minute field '60': 60 is out of range 0-59"),
        ("* 24 * * *", r"hour field '24': 24 is out of range 0-23"),
        ("* * 0 * *", r"day-of-month field '0': 0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month field '32'"),
        ("* * * 13 *", r"month field '13': 13 is out of range 1-12"),
        ("* * * foo *", "month field 'foo': 'foo' is not a number or a name"),
        ("* * * * 8", r"day-of-week field '8': 8 is out of range 0-7"),
        ("* * * * funday", "day-of-week field 'funday'"),
        ("mon * * * *", "minute field 'mon': 'mon' is not a number"),
        ("*/0 * * * *", "minute field '\\*/0': step '0'"),
        ("* */x * * *", "hour field '\\*/x': step 'x'"),
        ("*/61 * * * *", "minute field '\\*/61': step 61 .* larger than"),
        ("5/15 * * * *", "minute field '5/15': a step needs `\\*` or a range.*'5-59/15'"),
        ("30-10 * * * *", "minute field '30-10': range '30-10' runs backwards"),
        ("* * * * fri-sun", "day-of-week field 'fri-sun': range 'fri-sun' runs backwards"),
        ("1,,2 * * * *", "minute field '1,,2'"),
        ("-5 * * * *", "minute field '-5'"),
        ("L * * * *", "minute field 'L'"),
        ("0 0 31 2 *", "day-of-month '31' never occurs in month '2'"),
        ("0 0 30,31 feb *", "day-of-month '30,31' never occurs in month 'feb'"),
        ("0 0 31 apr,jun,sep,nov *", "day-of-month '31' never occurs"),
    ],
)
def test_parse_errors_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Schedule.parse(expression)


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime"])
def test_unknown_timezone(timezone: str) -> None:
    with pytest.raises(ConfigError, match=r"timezone .* is not a known IANA timezone"):
        Schedule.parse("0 2 * * *", timezone)


def test_impossible_day_is_fine_when_weekday_may_fire_instead() -> None:
    # Both day fields restricted: Feb 31 never comes, but Mondays in February do.
    schedule = Schedule.parse("0 0 31 2 mon")
    assert schedule.next_after(utc(2026, 1, 1)) == utc(2026, 2, 2)
    assert utc(2026, 2, 2).strftime("%a") == "Mon"


def test_str_and_repr() -> None:
    schedule = Schedule.parse(" 0  2 * * * ", "Australia/Melbourne")
    assert str(schedule) == "0 2 * * * (Australia/Melbourne)"
    assert str(Schedule.parse("@daily")) == "@daily (UTC)"
    assert repr(schedule) == "Schedule(expression='0 2 * * *', timezone='Australia/Melbourne')"


def test_schedules_compare_by_value() -> None:
    assert Schedule.parse("0 2 * * *", "Europe/Oslo") == Schedule.parse("0 2 * * *", "Europe/Oslo")
    assert Schedule.parse("0 2 * * *") != Schedule.parse("0 2 * * *", "Europe/Oslo")


# --- next_after, no DST change -------------------------------------------------------------


def test_melbourne_nightly_in_summer_and_winter() -> None:
    schedule = Schedule.parse("0 2 * * *", "Australia/Melbourne")
    # January: AEDT, UTC+11, so 02:00 local on the 11th is 15:00 UTC on the 10th.
    assert datetime(2026, 1, 11, 2, tzinfo=MELBOURNE).utcoffset() == timedelta(hours=11)
    assert schedule.next_after(utc(2026, 1, 10, 0)) == utc(2026, 1, 10, 15)
    # July: AEST, UTC+10.
    assert datetime(2026, 7, 11, 2, tzinfo=MELBOURNE).utcoffset() == timedelta(hours=10)
    assert schedule.next_after(utc(2026, 7, 10, 0)) == utc(2026, 7, 10, 16)


def test_next_after_is_strictly_after_and_returns_utc() -> None:
    schedule = Schedule.parse("0 2 * * *", "Australia/Melbourne")
    fire = utc(2026, 7, 10, 16)
    assert schedule.next_after(fire) == fire + timedelta(days=1)
    assert schedule.next_after(fire - timedelta(microseconds=1)) == fire
    assert schedule.next_after(fire + timedelta(microseconds=1)) == fire + timedelta(days=1)
    # The moment may be in any zone; the answer is always UTC.
    local = datetime(2026, 7, 11, 1, 59, 59, tzinfo=MELBOURNE)
    result = schedule.next_after(local)
    assert result == fire
    assert result.tzinfo is UTC


def test_naive_moments_are_refused() -> None:
    schedule = Schedule.parse("0 2 * * *")
    with pytest.raises(ValueError, match="moment must be timezone-aware"):
        schedule.next_after(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        schedule.due(None, datetime(2026, 1, 1))


def test_every_quarter_hour() -> None:
    schedule = Schedule.parse("*/15 * * * *")
    assert schedule.next_after(utc(2026, 1, 1, 10, 7, 30)) == utc(2026, 1, 1, 10, 15)
    assert fire_times(schedule, utc(2026, 12, 31, 23, 30), 3) == [
        utc(2026, 12, 31, 23, 45),
        utc(2027, 1, 1, 0, 0),
        utc(2027, 1, 1, 0, 15),
    ]


def test_weekday_names() -> None:
    schedule = Schedule.parse("0 9 * * mon-fri")
    friday = utc(2026, 1, 9, 10)
    assert friday.strftime("%a") == "Fri"
    assert fire_times(schedule, friday, 2) == [utc(2026, 1, 12, 9), utc(2026, 1, 13, 9)]


def test_month_names() -> None:
    schedule = Schedule.parse("0 0 1 jan,jul *")
    assert fire_times(schedule, utc(2026, 2, 1), 2) == [utc(2026, 7, 1), utc(2027, 1, 1)]


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    schedule = Schedule.parse("0 0 13 * fri")
    assert schedule.day_or is True
    # Every Friday (2, 9, 16 January 2026) and the 13th, a Tuesday.
    assert fire_times(schedule, utc(2026, 1, 1), 4) == [
        utc(2026, 1, 2),
        utc(2026, 1, 9),
        utc(2026, 1, 13),
        utc(2026, 1, 16),
    ]
    assert utc(2026, 1, 13).strftime("%a") == "Tue"


def test_day_fields_and_when_one_starts_with_star() -> None:
    # Vixie cron: `*/10` counts as unrestricted, so the day must be the 1st/11th/21st/31st AND
    # a Monday.
    schedule = Schedule.parse("0 0 */10 * mon")
    assert schedule.day_or is False
    times = fire_times(schedule, utc(2026, 1, 1), 3)
    assert times == [utc(2026, 5, 11), utc(2026, 6, 1), utc(2026, 8, 31)]
    assert all(t.strftime("%a") == "Mon" for t in times)


def test_weekly() -> None:
    wednesday = utc(2026, 1, 7, 12)
    assert wednesday.strftime("%a") == "Wed"
    assert Schedule.parse("@weekly").next_after(wednesday) == utc(2026, 1, 11)


def test_leap_day_skips_to_the_next_leap_year() -> None:
    schedule = Schedule.parse("0 0 29 2 *")
    assert schedule.next_after(utc(2026, 1, 1)) == utc(2028, 2, 29)
    # 2100 is not a leap year: eight years apart, still within the search.
    assert schedule.next_after(utc(2096, 3, 1)) == utc(2104, 2, 29)


def test_rarest_schedule_is_found() -> None:
    # A leap day that is also a Sunday (`*/7` makes the day fields AND): 40 years apart here.
    schedule = Schedule.parse("0 0 29 2 */7")
    assert schedule.next_after(utc(2089, 1, 1)) == utc(2128, 2, 29)


# --- next_after across DST changes ---------------------------------------------------------


def test_melbourne_2026_transitions_are_as_the_tests_assume() -> None:
    assert transitions(MELBOURNE, 2026) == [
        # Sunday 5 April, 03:00 AEDT -> 02:00 AEST.
        (utc(2026, 4, 4, 16), timedelta(hours=11), timedelta(hours=10)),
        # Sunday 4 October, 02:00 AEST -> 03:00 AEDT.
        (utc(2026, 10, 3, 16), timedelta(hours=10), timedelta(hours=11)),
    ]
    assert utc(2026, 4, 5).strftime("%a") == utc(2026, 10, 4).strftime("%a") == "Sun"


def test_melbourne_spring_forward_runs_at_the_end_of_the_gap() -> None:
    schedule = Schedule.parse("30 2 * * *", "Australia/Melbourne")
    # 02:30 on 4 October 2026 does not exist: the run moves to 03:00 AEDT = 16:00 UTC on the 3rd.
    first = schedule.next_after(utc(2026, 10, 3, 12))
    assert first == utc(2026, 10, 3, 16)
    assert first.astimezone(MELBOURNE).replace(tzinfo=None) == datetime(2026, 10, 4, 3, 0)
    assert schedule.next_after(utc(2026, 10, 3, 15, 59, 59)) == first
    # The next night is normal again: 02:30 AEDT = 15:30 UTC.
    assert schedule.next_after(first) == utc(2026, 10, 4, 15, 30)


def test_melbourne_fall_back_runs_once_at_the_first_occurrence() -> None:
    schedule = Schedule.parse("30 2 * * *", "Australia/Melbourne")
    # 02:30 on 5 April 2026 happens at 15:30 UTC (AEDT) and again at 16:30 UTC (AEST).
    first = schedule.next_after(utc(2026, 4, 4, 12))
    assert first == utc(2026, 4, 4, 15, 30)
    assert first.astimezone(MELBOURNE).utcoffset() == timedelta(hours=11)
    # Not again at the second 02:30: the next run is 02:30 AEST on the 6th.
    assert schedule.next_after(first) == utc(2026, 4, 5, 16, 30)
    # Even from inside the repeated hour, past the first occurrence.
    inside = datetime(2026, 4, 5, 2, 15, tzinfo=MELBOURNE, fold=1)
    assert inside.astimezone(UTC) == utc(2026, 4, 4, 16, 15)
    assert schedule.next_after(inside) == utc(2026, 4, 5, 16, 30)


def test_several_times_in_a_gap_collapse_into_one_run() -> None:
    schedule = Schedule.parse("*/15 2 * * *", "Australia/Melbourne")
    assert fire_times(schedule, utc(2026, 10, 3, 12), 2) == [
        utc(2026, 10, 3, 16),  # 02:00..02:45 do not exist: once at 03:00 AEDT
        utc(2026, 10, 4, 15),  # 02:00 AEDT the next night
    ]


def test_new_york_2026() -> None:
    assert [moment for moment, _, _ in transitions(NEW_YORK, 2026)] == [
        utc(2026, 3, 8, 7),  # 02:00 EST -> 03:00 EDT
        utc(2026, 11, 1, 6),  # 02:00 EDT -> 01:00 EST
    ]
    spring = Schedule.parse("30 2 * * *", "America/New_York")
    assert fire_times(spring, utc(2026, 3, 7), 3) == [
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7),  # no 02:30: 03:00 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]
    autumn = Schedule.parse("30 1 * * *", "America/New_York")
    assert fire_times(autumn, utc(2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, the first of two
        utc(2026, 11, 2, 6, 30),  # 01:30 EST the next night
    ]


def test_frequent_job_pauses_for_the_repeated_hour() -> None:
    # Documented difference from Vixie cron: each wall-clock time fires once, so a quarter-hourly
    # job does not fire again while 01:00-01:59 repeats.
    schedule = Schedule.parse("*/15 * * * *", "America/New_York")
    assert fire_times(schedule, utc(2026, 11, 1, 5, 40), 3) == [
        utc(2026, 11, 1, 5, 45),  # 01:45 EDT
        utc(2026, 11, 1, 7, 0),  # 02:00 EST, an hour and a quarter later
        utc(2026, 11, 1, 7, 15),
    ]


def test_oslo_hourly_across_spring_forward() -> None:
    assert [moment for moment, _, _ in transitions(OSLO, 2026)] == [
        utc(2026, 3, 29, 1),  # 02:00 CET -> 03:00 CEST
        utc(2026, 10, 25, 1),  # 03:00 CEST -> 02:00 CET
    ]
    schedule = Schedule.parse("@hourly", "Europe/Oslo")
    # 01:00 CET, then 02:00 is missing and its run is 03:00 CEST, which is also 03:00's: once.
    assert fire_times(schedule, utc(2026, 3, 28, 23, 30), 3) == [
        utc(2026, 3, 29, 0),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 2),
    ]


# --- due -----------------------------------------------------------------------------------

NIGHTLY = Schedule.parse("0 2 * * *", "Australia/Melbourne")
FIRE = utc(2026, 7, 10, 16)  # 02:00 AEST on 11 July


@pytest.mark.parametrize(
    ("last_run", "now", "expected"),
    [
        (FIRE - timedelta(days=1), FIRE - timedelta(seconds=1), False),
        (FIRE - timedelta(days=1), FIRE, True),
        (FIRE - timedelta(days=1), FIRE + timedelta(hours=5), True),  # missed: catch up
        (FIRE - timedelta(days=3), FIRE - timedelta(days=1, seconds=-30), True),
        (FIRE, FIRE + timedelta(hours=5), False),  # already ran
        (FIRE + timedelta(seconds=3), FIRE + timedelta(minutes=1), False),
        (FIRE + timedelta(hours=1), FIRE, False),  # last run in the future: not due
        # No last run: only a fire time within the last minute counts.
        (None, FIRE, True),
        (None, FIRE + timedelta(seconds=59), True),
        (None, FIRE + timedelta(minutes=1), False),
        (None, FIRE - timedelta(seconds=1), False),
    ],
)
def test_due(last_run: datetime | None, now: datetime, expected: bool) -> None:
    assert NIGHTLY.due(last_run, now) is expected


def test_due_grace() -> None:
    assert NIGHTLY.due(None, FIRE + timedelta(minutes=10), grace=timedelta(minutes=15))
    assert not NIGHTLY.due(None, FIRE + timedelta(minutes=10), grace=timedelta(minutes=5))
