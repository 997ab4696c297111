"""A scheduled BatchJob's timing, without a cluster or a clock: cron fields, time zones and
daylight saving, and what the controller does now (each concurrency policy, suspend, the
starting deadline, missed times after an outage), history pruning and run names."""

from __future__ import annotations

import datetime
import random
import re
import zoneinfo
from collections.abc import Sequence

import pytest

from tiers.operator import schedule
from tiers.operator.schedule import RunRef

UTC = datetime.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
CREATED = datetime.datetime(2026, 1, 1, tzinfo=UTC)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def at(text: str, tz: datetime.tzinfo = UTC) -> datetime.datetime:
    """'2026-03-29 02:30' on the wall clock of `tz`, or an ISO time with its own offset."""
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def upcoming(expression: str, after: str, count: int, tz: datetime.tzinfo = UTC) -> list[str]:
    """The next `count` scheduled times as local ISO strings with their offsets."""
    cron = schedule.parse(expression)
    moment, times = at(after, tz), []
    for _ in range(count):
        moment = schedule.next_after(cron, moment, tz)
        times.append(moment.astimezone(tz).isoformat(timespec="minutes"))
    return times


def decide(
    expression: str = "*/10 * * * *",
    *,
    now: str,
    last_scheduled: str | None = None,
    active: Sequence[RunRef] = (),
    suspend: bool = False,
    policy: schedule.ConcurrencyPolicy = "Allow",
    deadline: int | None = None,
    tz: datetime.tzinfo = UTC,
) -> schedule.Decision:
    return schedule.decide(
        cron=schedule.parse(expression),
        tz=tz,
        now=at(now, tz),
        last_scheduled=None if last_scheduled is None else at(last_scheduled, tz),
        created=CREATED,
        active_runs=list(active),
        suspend=suspend,
        concurrency_policy=policy,
        starting_deadline_seconds=deadline,
    )


def run(scheduled: str, state: schedule.RunState = "Active") -> RunRef:
    moment = at(scheduled)
    return RunRef(schedule.run_name("nightly", moment), moment, state)


# --- cron expressions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 * * * *", "2026-05-04 10:07", ["10:15", "10:30", "10:45", "11:00"]),
        ("5/20 * * * *", "2026-05-04 10:07", ["10:25", "10:45", "11:05", "11:25"]),
        ("0,30 9-10 * * *", "2026-05-04 00:00", ["09:00", "09:30", "10:00", "10:30"]),
        ("0 8-18/5 * * *", "2026-05-04 00:00", ["08:00", "13:00", "18:00", "08:00"]),
        ("15 14 * * *", "2026-05-04 14:15", ["14:15", "14:15", "14:15", "14:15"]),
    ],
    ids=[
        "every-15-minutes",
        "a-value-with-a-step-runs-to-the-end",
        "lists-and-ranges",
        "a-range-with-a-step",
        "a-time-equal-to-after-is-not-next",
    ],
)
def test_times_of_day_follow_the_minute_and_hour_fields(
    expression: str, after: str, expected: list[str]
) -> None:
    times = upcoming(expression, after, len(expected))
    assert [t[11:16] for t in times] == expected
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 9 * * MON-FRI", "2026-05-08 10:00", ["2026-05-11", "2026-05-12", "2026-05-13"]),
        ("0 9 * * sat,SUN", "2026-05-04 00:00", ["2026-05-09", "2026-05-10", "2026-05-16"]),
        ("0 9 * * 7", "2026-05-04 00:00", ["2026-05-10", "2026-05-17", "2026-05-24"]),
        ("0 9 * * 5-7", "2026-05-04 00:00", ["2026-05-08", "2026-05-09", "2026-05-10"]),
        ("0 9 13 * FRI", "2026-02-01 00:00", ["2026-02-06", "2026-02-13", "2026-02-20"]),
        ("0 9 */10 * MON", "2026-05-01 00:00", ["2026-05-01", "2026-05-04", "2026-05-11"]),
        ("0 9 1 * ?", "2026-05-04 00:00", ["2026-06-01", "2026-07-01", "2026-08-01"]),
        ("0 9 ? * 1", "2026-05-04 10:00", ["2026-05-11", "2026-05-18", "2026-05-25"]),
        ("0 0 31 * *", "2026-01-31 12:00", ["2026-03-31", "2026-05-31", "2026-07-31"]),
        ("0 0 29 2 *", "2026-01-01 00:00", ["2028-02-29", "2032-02-29", "2036-02-29"]),
        ("0 0 1 JAN-MAR/2 *", "2026-01-01 00:00", ["2026-03-01", "2027-01-01", "2027-03-01"]),
    ],
    ids=[
        "weekdays-by-name",
        "names-ignore-case",
        "7-is-sunday",
        "a-range-up-to-7",
        "day-of-month-or-day-of-week",
        "a-stepped-day-of-month-still-restricts",
        "question-mark-in-day-of-week",
        "question-mark-in-day-of-month",
        "short-months-skipped",
        "leap-days-only",
        "month-names-with-a-step",
    ],
)
def test_days_follow_the_day_and_month_fields(
    expression: str, after: str, expected: list[str]
) -> None:
    assert [t[:10] for t in upcoming(expression, after, len(expected))] == expected


@pytest.mark.parametrize(
    ("macro", "after", "expected"),
    [
        ("@hourly", "2026-05-04 10:07", "2026-05-04T11:00+00:00"),
        ("@daily", "2026-05-04 10:07", "2026-05-05T00:00+00:00"),
        ("@weekly", "2026-05-04 10:07", "2026-05-10T00:00+00:00"),
        ("@monthly", "2026-05-04 10:07", "2026-06-01T00:00+00:00"),
        ("@yearly", "2026-05-04 10:07", "2027-01-01T00:00+00:00"),
        ("@annually", "2026-05-04 10:07", "2027-01-01T00:00+00:00"),
        ("@DAILY", "2026-05-04 10:07", "2026-05-05T00:00+00:00"),
    ],
)
def test_macros_run_at_the_start_of_their_period(macro: str, after: str, expected: str) -> None:
    assert upcoming(macro, after, 1) == [expected]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute field 61 is out of range 0-59"),
        ("0 24 * * *", "hour field 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month field 0 is out of range 1-31"),
        ("0 0 * 13 *", "month field 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week field 8 is out of range 0-7"),
        ("0 0 * FOO *", "month field 'FOO' is not a value; use 1-12 or JAN-DEC"),
        ("0 0 * * MONDAY", "day-of-week field 'MONDAY' is not a value; use 0-7 or SUN-SAT"),
        ("5-3 * * * *", "minute field range 5-3 starts after it ends"),
        ("*/0 * * * *", "minute field step '0' must be a whole number of at least 1"),
        ("*/x * * * *", "minute field step 'x' must be a whole number of at least 1"),
        ("1,,2 * * * *", "minute field '1,,2' has an empty list item"),
        ("? * * * *", "minute field '?' is only allowed in day-of-month and day-of-week"),
        ("0 0 L * *", "day-of-month field 'L': L, W and # are not supported"),
        ("0 0 15W * *", "day-of-month field '15W': L, W and # are not supported"),
        ("0 0 * * 5#3", "day-of-week field '5#3': L, W and # are not supported"),
        ("0 0 * *", "has 4 fields; use five fields (minute hour day-of-month month day-of-week)"),
        ("0 0 * * * *", "has 6 fields"),
        ("", "has 0 fields"),
        ("@every 5m", "is not a known macro; use five fields"),
        ("@midnight", "or one of @yearly, @annually, @monthly, @weekly, @daily, @hourly"),
        ("CRON_TZ=Europe/Berlin 0 2 * * *", "set spec.timeZone instead"),
        ("TZ=UTC 0 2 * * *", "TZ= and CRON_TZ= are not allowed"),
        ("0 0 30 2 *", "never runs: day-of-month 30 does not occur in FEB"),
        ("0 0 31 4,6 *", "never runs: day-of-month 31 does not occur in APR,JUN"),
    ],
)
def test_an_invalid_schedule_names_the_field_and_what_it_allows(
    expression: str, message: str
) -> None:
    with pytest.raises(ValueError) as error:
        schedule.parse(expression)
    assert message in str(error.value)
    assert str(error.value).startswith(f"schedule {expression!r}")


def test_the_day_of_week_or_rule_has_a_way_out_of_an_impossible_date() -> None:
    # 30 February never comes, but a Monday in February does: restricted day fields are an OR.
    assert upcoming("0 0 30 2 MON", "2026-05-04 10:00", 1) == ["2027-02-01T00:00+00:00"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [(None, "UTC"), ("Europe/Berlin", "Europe/Berlin"), ("UTC", "UTC")],
)
def test_a_time_zone_is_an_iana_name_and_utc_when_unset(name: str | None, expected: str) -> None:
    assert str(schedule.parse_time_zone(name)) == expected


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "Local", "localtime", "../etc/passwd", ""])
def test_an_unknown_time_zone_is_rejected_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=r"timeZone .* (not an IANA|must name an explicit)"):
        schedule.parse_time_zone(name)


def test_times_are_read_on_the_wall_clock_of_the_time_zone() -> None:
    assert upcoming("0 2 * * *", "2026-07-01 00:00", 1, BERLIN) == ["2026-07-01T02:00+02:00"]
    cron = schedule.parse("0 2 * * *")
    assert schedule.next_after(cron, at("2026-07-01 00:00", BERLIN), BERLIN) == at(
        "2026-07-01T00:00+00:00"
    )


def test_next_after_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        schedule.next_after(schedule.parse("@daily"), datetime.datetime(2026, 1, 1), UTC)


# --- daylight saving: Berlin moves 02:00 -> 03:00 on 2026-03-29 and 03:00 -> 02:00 on 2026-10-25


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        (
            "30 2 * * *",
            "2026-03-28 12:00",
            ["2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"],
        ),
        (
            "30 2 * * *",
            "2026-10-24 12:00",
            ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
        ),
        (
            "0,30 1-3 * * *",
            "2026-03-29 00:00",
            [
                "2026-03-29T01:00+01:00",
                "2026-03-29T01:30+01:00",
                "2026-03-29T03:00+02:00",
                "2026-03-29T03:30+02:00",
            ],
        ),
        (
            "*/30 * * * *",
            "2026-03-29 01:00",
            ["2026-03-29T01:30+01:00", "2026-03-29T03:00+02:00", "2026-03-29T03:30+02:00"],
        ),
        (
            "*/30 * * * *",
            "2026-10-25 01:00",
            [
                "2026-10-25T01:30+02:00",
                "2026-10-25T02:00+02:00",
                "2026-10-25T02:30+02:00",
                "2026-10-25T02:00+01:00",
                "2026-10-25T02:30+01:00",
                "2026-10-25T03:00+01:00",
            ],
        ),
        (
            "@hourly",
            "2026-10-25 00:30",
            [
                "2026-10-25T01:00+02:00",
                "2026-10-25T02:00+02:00",
                "2026-10-25T02:00+01:00",
                "2026-10-25T03:00+01:00",
            ],
        ),
        (
            "15 * * * *",
            "2026-03-29 00:30",
            ["2026-03-29T01:15+01:00", "2026-03-29T03:15+02:00", "2026-03-29T04:15+02:00"],
        ),
    ],
    ids=[
        "fixed-time-in-the-skipped-hour-runs-when-the-clocks-jump",
        "fixed-time-in-the-repeated-hour-runs-once",
        "fixed-times-in-the-skipped-hour-run-once-at-the-jump",
        "wildcard-skips-the-times-that-never-happen",
        "wildcard-runs-in-both-occurrences-of-the-repeated-hour",
        "hourly-stays-hourly-in-elapsed-time",
        "every-hour-at-15-skips-the-missing-0215",
    ],
)
def test_clock_changes_in_berlin(expression: str, after: str, expected: list[str]) -> None:
    assert upcoming(expression, after, len(expected), BERLIN) == expected


def test_a_time_after_the_clocks_went_back_still_finds_the_repeated_hour() -> None:
    # 02:50 summer time; the wildcard schedule's next time is 02:00 winter time, 10 minutes on.
    cron = schedule.parse("0 * * * *")
    after = at("2026-10-25T02:50+02:00")
    assert schedule.next_after(cron, after, BERLIN) == at("2026-10-25T02:00+01:00")
    assert schedule.next_after(cron, at("2026-10-25T02:10+01:00"), BERLIN) == at(
        "2026-10-25T03:00+01:00"
    )


def test_a_daily_run_at_midnight_survives_a_clock_change_at_midnight() -> None:
    # Sao Paulo skipped 2018-11-04 00:00-00:59: @daily ran when the clocks jumped, at 01:00.
    sao_paulo = zoneinfo.ZoneInfo("America/Sao_Paulo")
    assert upcoming("@daily", "2018-11-03 12:00", 2, sao_paulo) == [
        "2018-11-04T01:00-02:00",
        "2018-11-05T00:00-02:00",
    ]


def _read_rules_minute_by_minute(
    cron: schedule.Cron, after: datetime.datetime, tz: datetime.tzinfo
) -> datetime.datetime:
    """The module docstring's rules, applied to every UTC minute in turn: slow but plain."""
    minute = datetime.timedelta(minutes=1)
    moment = after.replace(second=0, microsecond=0) + minute

    def named(wall: datetime.datetime) -> bool:
        return wall.minute in cron.minutes and wall.hour in cron.hours and cron.matches_day(wall)

    while True:
        wall, before = moment.astimezone(tz), (moment - minute).astimezone(tz)
        if named(wall) and (cron.wildcard_time or wall.fold == 0):
            return moment
        skipped = wall.replace(tzinfo=None) - before.replace(tzinfo=None) - minute
        if not cron.wildcard_time and skipped > datetime.timedelta(0):
            first = before.replace(tzinfo=None) + minute
            if any(named(first + i * minute) for i in range(skipped // minute)):
                return moment
        moment += minute


@pytest.mark.parametrize(
    ("zone", "changes"),
    [
        ("Europe/Berlin", ["2026-03-29T01:00+00:00", "2026-10-25T01:00+00:00"]),
        ("America/Sao_Paulo", ["2018-11-04T03:00+00:00", "2019-02-17T02:00+00:00"]),
        ("Australia/Lord_Howe", ["2026-04-04T15:00+00:00", "2026-10-03T15:30+00:00"]),
    ],
)
def test_next_after_agrees_with_a_minute_by_minute_reading_of_the_rules(
    zone: str, changes: list[str]
) -> None:
    tz, rng = zoneinfo.ZoneInfo(zone), random.Random(zone)
    hours = ["*", "*/2", "0-3", "1", "2", "23,0,1", "1-2", "3"]
    minutes = ["*", "*/7", "0", "30", "15,45", "0-10", "59"]
    for _ in range(60):
        expression = f"{rng.choice(minutes)} {rng.choice(hours)} * * *"
        cron = schedule.parse(expression)
        after = at(rng.choice(changes)) + datetime.timedelta(seconds=rng.randint(-14400, 14400))
        expected = _read_rules_minute_by_minute(cron, after, tz)
        assert schedule.next_after(cron, after, tz) == expected, (expression, after)


# --- what to do now ---------------------------------------------------------------------------


def test_nothing_is_due_before_the_first_scheduled_time() -> None:
    decision = decide(now="2026-01-01 00:05")
    assert (decision.outcome, decision.start) == ("NotDue", None)
    assert decision.next_run == at("2026-01-01 00:10")


def test_a_due_time_starts_a_run_and_is_recorded() -> None:
    decision = decide(now="2026-01-01 00:10:00.100")
    assert decision.outcome == "Start"
    assert decision.start == decision.last_scheduled == at("2026-01-01 00:10")
    assert decision.next_run == at("2026-01-01 00:20")
    assert (decision.stop, decision.events, decision.missed) == ((), (), 1)


def test_the_time_already_run_is_not_run_again() -> None:
    decision = decide(now="2026-01-01 00:15", last_scheduled="2026-01-01 00:10")
    assert (decision.outcome, decision.start) == ("NotDue", None)
    assert decision.next_run == at("2026-01-01 00:20")


@pytest.mark.parametrize(
    ("policy", "active", "outcome", "starts", "stops"),
    [
        ("Allow", [], "Start", True, []),
        ("Allow", ["2026-01-01 00:10"], "Start", True, []),
        ("Forbid", [], "Start", True, []),
        ("Forbid", ["2026-01-01 00:10"], "RunAlreadyActive", False, []),
        ("Replace", [], "Start", True, []),
        (
            "Replace",
            ["2026-01-01 00:00", "2026-01-01 00:10"],
            "Start",
            True,
            ["2026-01-01 00:00", "2026-01-01 00:10"],
        ),
    ],
    ids=[
        "allow-alone",
        "allow-beside-an-active-run",
        "forbid-alone",
        "forbid-holds-back-while-a-run-is-active",
        "replace-alone",
        "replace-stops-every-active-run",
    ],
)
def test_each_concurrency_policy(
    policy: schedule.ConcurrencyPolicy,
    active: list[str],
    outcome: str,
    starts: bool,
    stops: list[str],
) -> None:
    runs = [run(t) for t in active]
    decision = decide(
        now="2026-01-01 00:20:01", last_scheduled="2026-01-01 00:10", active=runs, policy=policy
    )
    assert decision.outcome == outcome
    assert decision.start == (at("2026-01-01 00:20") if starts else None)
    assert [r.scheduled for r in decision.stop] == [at(t) for t in stops]
    assert decision.next_run == at("2026-01-01 00:30")


def test_forbid_says_which_run_holds_the_time_back() -> None:
    active = run("2026-01-01 00:10")
    decision = decide(
        now="2026-01-01 00:20", last_scheduled="2026-01-01 00:10", active=[active], policy="Forbid"
    )
    assert decision.skipped == at("2026-01-01 00:20")
    assert decision.last_scheduled == at("2026-01-01 00:10")
    [event] = decision.events
    assert (event.type, event.reason) == ("Normal", "RunAlreadyActive")
    assert active.name in event.message and "spec.concurrencyPolicy is Forbid" in event.message


def test_a_time_forbid_held_back_starts_when_the_active_run_ends_as_in_a_cronjob() -> None:
    decision = decide(now="2026-01-01 00:27", last_scheduled="2026-01-01 00:10", policy="Forbid")
    assert (decision.outcome, decision.start) == ("Start", at("2026-01-01 00:20"))


def test_a_time_forbid_held_back_past_the_starting_deadline_is_skipped() -> None:
    decision = decide(
        now="2026-01-01 00:27", last_scheduled="2026-01-01 00:10", policy="Forbid", deadline=300
    )
    assert (decision.outcome, decision.start, decision.skipped) == (
        "MissSchedule",
        None,
        at("2026-01-01 00:20"),
    )


def test_a_suspended_job_starts_nothing_and_has_no_next_run() -> None:
    decision = decide(now="2026-01-01 00:20:01", last_scheduled="2026-01-01 00:10", suspend=True)
    assert (decision.outcome, decision.start, decision.next_run) == ("Suspended", None, None)
    assert decision.last_scheduled == at("2026-01-01 00:10")
    assert decision.events == ()


def test_resuming_starts_only_the_most_recent_missed_time_as_a_cronjob_does() -> None:
    decision = decide(now="2026-01-01 01:05", last_scheduled="2026-01-01 00:10")
    assert (decision.outcome, decision.start, decision.missed) == (
        "Start",
        at("2026-01-01 01:00"),
        5,
    )


@pytest.mark.parametrize(
    ("now", "outcome", "start"),
    [
        ("2026-01-01 00:20:59", "Start", "2026-01-01 00:20"),
        ("2026-01-01 00:21:00", "Start", "2026-01-01 00:20"),
        ("2026-01-01 00:21:01", "MissSchedule", None),
    ],
    ids=["well-within", "exactly-at-the-deadline", "one-second-late"],
)
def test_the_starting_deadline_bounds_how_late_a_run_may_start(
    now: str, outcome: str, start: str | None
) -> None:
    decision = decide(now=now, last_scheduled="2026-01-01 00:10", deadline=60)
    assert decision.outcome == outcome
    assert decision.start == (None if start is None else at(start))


def test_a_missed_starting_deadline_is_a_warning_naming_the_field() -> None:
    decision = decide(now="2026-01-01 00:25", last_scheduled="2026-01-01 00:10", deadline=60)
    assert decision.skipped == at("2026-01-01 00:20")
    assert decision.next_run == at("2026-01-01 00:30")
    [event] = decision.events
    assert (event.type, event.reason) == ("Warning", "MissSchedule")
    assert "2026-01-01T00:20:00+00:00" in event.message
    assert "spec.startingDeadlineSeconds (60 s)" in event.message


def test_after_an_operator_outage_only_the_most_recent_missed_time_runs() -> None:
    decision = decide(
        "0 2 * * *", now="2026-01-05 09:00", last_scheduled="2026-01-01 02:00", policy="Forbid"
    )
    assert (decision.start, decision.missed) == (at("2026-01-05 02:00"), 4)
    assert decision.next_run == at("2026-01-06 02:00")
    [event] = decision.events
    assert (event.type, event.reason) == ("Normal", "MissedSchedules")
    assert event.message.startswith("4 scheduled times since 2026-01-01T02:00:00+00:00 had no run")


def test_more_than_100_missed_times_is_a_warning_and_still_starts_the_latest() -> None:
    decision = decide("* * * * *", now="2026-01-03 10:00:30", last_scheduled="2026-01-01 00:00")
    assert decision.start == at("2026-01-03 10:00")
    assert decision.missed == schedule.MISSED_TIMES_LIMIT + 1
    [event] = decision.events
    assert (event.type, event.reason) == ("Warning", "TooManyMissedTimes")
    assert "more than 100" in event.message and "spec.startingDeadlineSeconds" in event.message


def test_a_starting_deadline_keeps_an_outage_from_counting_as_too_many_missed_times() -> None:
    decision = decide(
        "* * * * *", now="2026-01-03 10:00:30", last_scheduled="2026-01-01 00:00", deadline=600
    )
    assert decision.start == at("2026-01-03 10:00")
    [event] = decision.events
    assert (event.type, event.reason) == ("Normal", "MissedSchedules")


def test_years_of_missed_minutes_are_not_stepped_through_one_by_one() -> None:
    decision = decide("* * * * *", now="2036-01-01 00:00:30", last_scheduled="2026-01-01 00:00")
    assert decision.start == at("2036-01-01 00:00")


def test_a_run_made_before_the_operator_restarted_is_not_made_twice() -> None:
    # The run for 00:20 exists, but the status write recording it was lost.
    made = run("2026-01-01 00:20")
    for policy in ("Allow", "Forbid", "Replace"):
        decision = decide(
            now="2026-01-01 00:21", last_scheduled="2026-01-01 00:10", active=[made], policy=policy
        )
        assert (decision.outcome, decision.start, decision.stop) == ("AlreadyStarted", None, ())
        assert decision.last_scheduled == at("2026-01-01 00:20")


def test_a_last_scheduled_time_ahead_of_the_clock_waits_for_the_clock() -> None:
    decision = decide(now="2026-01-01 00:05", last_scheduled="2026-01-01 00:30")
    assert (decision.outcome, decision.next_run) == ("NotDue", at("2026-01-01 00:40"))


def test_decisions_follow_the_time_zone_across_a_clock_change() -> None:
    decision = decide(
        "30 2 * * *",
        now="2026-03-29T03:00:05+02:00",
        last_scheduled="2026-03-28T02:30+01:00",
        tz=BERLIN,
    )
    assert decision.start == at("2026-03-29T03:00+02:00")
    assert decision.next_run == at("2026-03-30T02:30+02:00")


def simulate(
    policy: schedule.ConcurrencyPolicy, *, minutes: int, run_minutes: int
) -> tuple[list[tuple[int, str]], int]:
    """An every-10-minutes job whose runs take `run_minutes`, decided once a minute: the runs
    made as (scheduled minute, how each ended), and the most runs active at once."""
    cron, now = schedule.parse("*/10 * * * *"), CREATED
    run_for = datetime.timedelta(minutes=run_minutes)
    last: datetime.datetime | None = None
    active: list[RunRef] = []
    ended: list[tuple[RunRef, str]] = []
    started: dict[str, datetime.datetime] = {}
    busiest = 0
    for _ in range(minutes):
        now += datetime.timedelta(minutes=1)
        for r in [r for r in active if now - started[r.name] >= run_for]:
            active.remove(r)
            ended.append((r, "done"))
        decision = schedule.decide(
            cron=cron,
            tz=UTC,
            now=now,
            last_scheduled=last,
            created=CREATED,
            active_runs=active,
            suspend=False,
            concurrency_policy=policy,
            starting_deadline_seconds=None,
        )
        for r in decision.stop:
            active.remove(r)
            ended.append((r, "stopped"))
        if decision.start is not None:
            active.append(RunRef(schedule.run_name("job", decision.start), decision.start))
            started[active[-1].name] = now
        last = decision.last_scheduled
        busiest = max(busiest, len(active))
    made = ended + [(r, "running") for r in active]
    return sorted(
        ((r.scheduled - CREATED) // datetime.timedelta(minutes=1), how) for r, how in made
    ), busiest


def test_a_schedule_makes_runs_under_each_concurrency_policy() -> None:
    allow, allow_busiest = simulate("Allow", minutes=60, run_minutes=25)
    assert [m for m, _ in allow] == [10, 20, 30, 40, 50, 60]
    assert allow_busiest == 3 and all(how != "stopped" for _, how in allow)
    # 00:10 runs to 00:35, holding back 00:20 and 00:30; 00:30 then starts late, at 00:35.
    forbid, forbid_busiest = simulate("Forbid", minutes=60, run_minutes=25)
    assert forbid == [(10, "done"), (30, "done"), (60, "running")]
    assert forbid_busiest == 1
    replace, replace_busiest = simulate("Replace", minutes=60, run_minutes=25)
    assert replace == [(m, "stopped") for m in (10, 20, 30, 40, 50)] + [(60, "running")]
    assert replace_busiest == 1


# --- history and names ------------------------------------------------------------------------


def test_history_keeps_the_newest_finished_runs_and_every_active_one() -> None:
    runs = [
        run("2026-01-01 00:10", "Succeeded"),
        run("2026-01-01 00:20", "Failed"),
        run("2026-01-01 00:30", "Succeeded"),
        run("2026-01-01 00:40", "Failed"),
        run("2026-01-01 00:50", "Succeeded"),
        run("2026-01-01 01:00", "Succeeded"),
        run("2026-01-01 01:10", "Active"),
        run("2026-01-01 00:05", "Active"),
    ]
    kept, removed = schedule.prune_history(runs)
    assert [r.scheduled for r in removed] == [at("2026-01-01 00:10"), at("2026-01-01 00:20")]
    assert kept == [r for r in runs if r not in removed]


@pytest.mark.parametrize(
    ("successful", "failed", "removed_states"),
    [(0, 0, ["Failed", "Succeeded", "Succeeded"]), (5, 5, []), (1, 0, ["Failed", "Succeeded"])],
)
def test_history_limits_count_succeeded_and_failed_runs_apart(
    successful: int, failed: int, removed_states: list[str]
) -> None:
    runs = [
        run("2026-01-01 00:10", "Succeeded"),
        run("2026-01-01 00:20", "Failed"),
        run("2026-01-01 00:30", "Succeeded"),
    ]
    _, removed = schedule.prune_history(runs, successful_limit=successful, failed_limit=failed)
    assert sorted(r.state for r in removed) == removed_states


def test_a_negative_history_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="history limits must be 0 or more"):
        schedule.prune_history([], successful_limit=-1)


def test_a_run_name_is_the_job_and_its_scheduled_unix_minute_like_a_cronjobs() -> None:
    scheduled = at("2026-01-01 00:10")
    assert schedule.run_name("nightly", scheduled) == f"nightly-{int(scheduled.timestamp()) // 60}"
    assert schedule.run_name("nightly", scheduled.astimezone(BERLIN)) == schedule.run_name(
        "nightly", scheduled
    )
    assert schedule.run_name("nightly", scheduled) != schedule.run_name(
        "nightly", scheduled + datetime.timedelta(minutes=1)
    )


@pytest.mark.parametrize(
    "job_name",
    ["a" * 54, "a" * 55, "b" * 253, "Reports.EU-west", "weekly.report", "-x-", "a" * 50 + "-" * 10],
)
def test_a_run_name_is_a_valid_label_for_any_job_name(job_name: str) -> None:
    name = schedule.run_name(job_name, at("2026-01-01 00:10"))
    assert len(name) <= 63 and DNS_LABEL.match(name), name
    assert name == schedule.run_name(job_name, at("2026-01-01 00:10"))


def test_shortened_or_cleaned_names_of_different_jobs_stay_different() -> None:
    scheduled = at("2026-01-01 00:10")
    long_a, long_b = "x" * 60 + "-a", "x" * 60 + "-b"
    assert schedule.run_name(long_a, scheduled) != schedule.run_name(long_b, scheduled)
    assert schedule.run_name("weekly.report", scheduled) != schedule.run_name(
        "weekly-report", scheduled
    )
    minute = int(scheduled.timestamp()) // 60
    assert schedule.run_name("a" * 54, scheduled) == f"{'a' * 54}-{minute}"  # 63: untouched


def test_the_public_surface_is_what_all_names() -> None:
    public = {
        name
        for name, value in vars(schedule).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == schedule.__name__
    }
    assert public <= set(schedule.__all__)
    assert all(hasattr(schedule, name) for name in schedule.__all__)
