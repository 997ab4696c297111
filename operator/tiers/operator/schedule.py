"""When a scheduled BatchJob runs: a Kubernetes CronJob's semantics as pure functions.

The BatchJob handler parses `spec.schedule` once (`parse`, whose ValueError names the field and
what it allows), then on every reconcile asks `decide(...)` what to do now, with the time passed
in: start a run for a scheduled time, stop the active runs first (Replace), skip (Forbid, a missed
starting deadline), and when to look again. Nothing here reads a clock or the cluster.

Like the CronJob controller (v2), a BatchJob runs only the most recent scheduled time it missed:
after an operator outage of a day, an hourly job makes one run, not 24, and more than 100 missed
times are also a warning (a small `startingDeadlineSeconds` or a skewed clock is the usual cause).
A time older than `startingDeadlineSeconds` is skipped. A time is not recorded as scheduled until
its run starts, so a time that Forbid held back still starts when the active run ends, if it is
still the most recent one and within the deadline: that is what a CronJob does too.

Cron fields are minute, hour, day of month, month, day of week, with `*`, `?` (day fields), lists,
ranges, steps (`a/n` is `a-max/n`), names (JAN-DEC, SUN-SAT; 7 is Sunday too) and the macros
@hourly, @daily, @weekly, @monthly, @yearly and @annually. When both day fields are restricted a
day matches either (the cron OR rule); a day field counts as unrestricted only when it is `*` or
`?`, so `*/2` restricts, as in Kubernetes.

Daylight saving time: a schedule is read on the wall clock of `spec.timeZone` (UTC when unset;
Kubernetes would use the controller manager's zone). Where the clocks change, we follow Vixie
cron (Debian cron(8)) rather than Kubernetes, which drops runs in a skipped hour and repeats runs
in a repeated hour:

- A fixed-time schedule (no `*` in the minute or hour field, e.g. `30 2 * * *`) runs once a day
  regardless: a time that the spring change skips runs at the moment the clocks jump (03:00 in
  Berlin), and a time that the autumn change repeats runs at its first occurrence only.
- A wildcard schedule (`*` in the minute or hour field, e.g. `*/15 * * * *` or @hourly) follows
  elapsed time: skipped wall times do not happen, repeated ones run in both occurrences.

A run's name comes from its scheduled time (`run_name`), so an operator restarted between creating
a run and recording it finds the run instead of making a second one.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import hashlib
import re
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

__all__ = [
    "FAILED_JOBS_HISTORY_LIMIT",
    "MISSED_TIMES_LIMIT",
    "SUCCESSFUL_JOBS_HISTORY_LIMIT",
    "ConcurrencyPolicy",
    "Cron",
    "Decision",
    "Outcome",
    "RunRef",
    "RunState",
    "ScheduleEvent",
    "decide",
    "next_after",
    "parse",
    "parse_time_zone",
    "prune_history",
    "run_name",
]

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
RunState = Literal["Active", "Succeeded", "Failed"]
Outcome = Literal[
    "Start", "Suspended", "NotDue", "AlreadyStarted", "RunAlreadyActive", "MissSchedule"
]

SUCCESSFUL_JOBS_HISTORY_LIMIT = 3
FAILED_JOBS_HISTORY_LIMIT = 1
MISSED_TIMES_LIMIT = 100
"""More missed times than this are a warning, and counting stops there, as in a CronJob."""

UTC = datetime.UTC
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SYNTAX = (
    "five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *',"
    " or one of " + ", ".join(_MACROS)
)
# A wall time at most this far before `after` can still fall after it: the longest clock change
# back in current time zone data is 2 hours (Antarctica/Troll).
_CLOCK_CHANGE_MARGIN = datetime.timedelta(hours=3)
# A schedule that can run runs within 8 years (29 February); a bug must not loop for ever.
_SEARCH_SPAN = datetime.timedelta(days=366 * 10)
_ONE_DAY = datetime.timedelta(days=1)
_NAME_LIMIT = 63


@dataclasses.dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: Mapping[str, int] = dataclasses.field(default_factory=dict)
    names_hint: str = ""
    day_field: bool = False

    @property
    def allowed(self) -> str:
        names = f" or {self.names_hint}" if self.names_hint else ""
        question = ", ?" if self.day_field else ""
        return f"{self.low}-{self.high}{names}, *{question}, ranges a-b, lists a,b, steps */n a-b/n"


_MONTH_NAMES = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
# Quartz's last-day, nearest-weekday and nth-weekday forms, which Kubernetes does not take either.
_QUARTZ = re.compile(r"\d*L|L-?\d*|LW|\d+W|\w+#\d+", re.IGNORECASE)
_MINUTE = _FieldSpec("minute", 0, 59)
_HOUR = _FieldSpec("hour", 0, 23)
_DAY_OF_MONTH = _FieldSpec("day-of-month", 1, 31, day_field=True)
_MONTH = _FieldSpec("month", 1, 12, _MONTH_NAMES, "JAN-DEC")
_DAY_OF_WEEK = _FieldSpec("day-of-week", 0, 7, _DAY_NAMES, "SUN-SAT (0 and 7 are Sunday)", True)


@dataclasses.dataclass(frozen=True)
class Cron:
    """A parsed schedule: the values each field allows. Make one with `parse`."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    """0 is Sunday."""
    day_of_month_restricted: bool
    day_of_week_restricted: bool
    wildcard_time: bool
    """`*` in the minute or hour field: the schedule follows elapsed time across clock changes."""

    def matches_day(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days_of_month
        in_week = (day.weekday() + 1) % 7 in self.days_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return in_month or in_week
        return in_month and in_week


@dataclasses.dataclass(frozen=True)
class RunRef:
    """One run of a scheduled BatchJob, as the handler found it."""

    name: str
    scheduled: datetime.datetime
    state: RunState = "Active"


@dataclasses.dataclass(frozen=True)
class ScheduleEvent:
    """An Event to record on the BatchJob about a time that did not run as written."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the controller should do now, and when to look again."""

    outcome: Outcome
    start: datetime.datetime | None
    """Start a run for this scheduled time (named `run_name(job, start)`); None: start none."""
    last_scheduled: datetime.datetime | None
    """What status should record as the last scheduled time once the decision is carried out."""
    next_run: datetime.datetime | None
    """The next scheduled time, to requeue at and show as status.nextRun; None while suspended.
    Also decide again when an active run ends: a time Forbid held back may start then."""
    stop: tuple[RunRef, ...] = ()
    """Active runs to stop before the new one starts (Replace)."""
    skipped: datetime.datetime | None = None
    """The due time that gets no run now (Forbid, or past the starting deadline). The same skip
    comes back on every call until the next time is due: record its Event once per time."""
    missed: int = 0
    """Scheduled times since the last one (or since creation) that had no run, the one started
    now included; counting stops above MISSED_TIMES_LIMIT."""
    events: tuple[ScheduleEvent, ...] = ()


def parse(expression: str) -> Cron:
    """A schedule's fields, or a ValueError that names the field and what it allows."""
    text = expression.strip()
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        raise ValueError(
            f"schedule {expression!r}: TZ= and CRON_TZ= are not allowed; set spec.timeZone instead"
        )
    if text.startswith("@"):
        if text.lower() not in _MACROS:
            raise ValueError(f"schedule {expression!r} is not a known macro; use {_SYNTAX}")
        text = _MACROS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"schedule {expression!r} has {len(fields)} fields; use {_SYNTAX}")
    try:
        minutes, _ = _parse_field(fields[0], _MINUTE)
        hours, _ = _parse_field(fields[1], _HOUR)
        days_of_month, dom_any = _parse_field(fields[2], _DAY_OF_MONTH)
        months, _ = _parse_field(fields[3], _MONTH)
        days_of_week, dow_any = _parse_field(fields[4], _DAY_OF_WEEK)
    except ValueError as error:
        raise ValueError(f"schedule {expression!r}: {error}") from None
    cron = Cron(
        expression=expression,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days_of_month=frozenset(days_of_month),
        months=frozenset(months),
        days_of_week=frozenset(d % 7 for d in days_of_week),
        day_of_month_restricted=not dom_any,
        day_of_week_restricted=not dow_any,
        wildcard_time="*" in fields[0] or "*" in fields[1],
    )
    if cron.day_of_month_restricted and not cron.day_of_week_restricted:
        # 29 February counts: the search for it goes on to the next leap year.
        longest = max(calendar.monthrange(2024, month)[1] for month in cron.months)
        if min(cron.days_of_month) > longest:
            month_list = ",".join(calendar.month_abbr[m].upper() for m in sorted(cron.months))
            raise ValueError(
                f"schedule {expression!r} never runs: day-of-month {fields[2]} does not occur"
                f" in {month_list}"
            )
    return cron


def _parse_field(text: str, spec: _FieldSpec) -> tuple[set[int], bool]:
    """The values a field allows, and whether it leaves its day unrestricted (`*` or `?`)."""
    values: set[int] = set()
    unrestricted = False
    for item in text.split(","):
        if not item:
            raise ValueError(f"{spec.name} field {text!r} has an empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(
                    f"{spec.name} field step {step_text!r} must be a whole number of at least 1"
                )
            step = int(step_text)
        if base in ("*", "?"):
            if base == "?" and not spec.day_field:
                raise ValueError(
                    f"{spec.name} field '?' is only allowed in day-of-month and day-of-week"
                )
            low, high = spec.low, spec.high
            unrestricted = unrestricted or step == 1
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _parse_value(first, spec), _parse_value(last, spec)
            if low > high:
                raise ValueError(f"{spec.name} field range {base} starts after it ends")
        else:
            low = _parse_value(base, spec)
            high = spec.high if slash else low
        values.update(range(low, high + 1, step))
    return values, unrestricted


def _parse_value(text: str, spec: _FieldSpec) -> int:
    if text.isdigit():
        value = int(text)
        if not spec.low <= value <= spec.high:
            raise ValueError(f"{spec.name} field {text} is out of range {spec.low}-{spec.high}")
        return value
    if text.upper() in spec.names:
        return spec.names[text.upper()]
    if _QUARTZ.fullmatch(text):
        raise ValueError(
            f"{spec.name} field {text!r}: L, W and # are not supported; use {spec.allowed}"
        )
    raise ValueError(f"{spec.name} field {text!r} is not a value; use {spec.allowed}")


def parse_time_zone(name: str | None) -> datetime.tzinfo:
    """`spec.timeZone` as a time zone: an IANA name; UTC when unset."""
    if name is None:
        return UTC
    if name.lower() in ("local", "localtime"):
        raise ValueError(
            f"timeZone {name!r} must name an explicit IANA time zone, e.g. 'Europe/Berlin'"
        )
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timeZone {name!r} is not an IANA time zone name, e.g. 'Europe/Berlin' or 'UTC'"
        ) from None


def next_after(cron: Cron, after: datetime.datetime, tz: datetime.tzinfo) -> datetime.datetime:
    """The first scheduled instant strictly after `after`, in UTC; clock changes as described in
    the module docstring."""
    after = _utc(after, "after")
    start = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    offsets = {
        (after + shift).astimezone(tz).utcoffset()
        for shift in (-_CLOCK_CHANGE_MARGIN, datetime.timedelta(0), _CLOCK_CHANGE_MARGIN)
    }
    if len(offsets) > 1:
        # Near a clock change back, an earlier wall time may still be ahead of `after`.
        start -= _CLOCK_CHANGE_MARGIN
    best: datetime.datetime | None = None
    for wall in _walls(cron, start):
        instants, ordinary = _instants(cron, wall, tz)
        for instant in instants:
            if instant > after and (best is None or instant < best):
                best = instant
        # Past an ordinary wall time, later wall times only map to later instants.
        if ordinary and best is not None and instants[0] > after:
            return best
    raise AssertionError("unreachable: _walls raises when it runs out")


def _walls(cron: Cron, start: datetime.datetime) -> Iterator[datetime.datetime]:
    """The wall-clock times the schedule names, from `start` (naive) on, in order."""
    day = start.date()
    end = day + _SEARCH_SPAN
    while day <= end:
        if day.month not in cron.months:
            day = (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
            continue
        if cron.matches_day(day):
            for hour in cron.hours:
                for minute in cron.minutes:
                    wall = datetime.datetime(day.year, day.month, day.day, hour, minute)
                    if wall >= start:
                        yield wall
        day += _ONE_DAY
    raise ValueError(f"schedule {cron.expression!r} names no time within ten years")


def _instants(
    cron: Cron, wall: datetime.datetime, tz: datetime.tzinfo
) -> tuple[tuple[datetime.datetime, ...], bool]:
    """The instants a wall time stands for, and whether it is ordinary (neither skipped nor
    repeated by a clock change)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return (first,), True
    if first < second:  # repeated: the clocks went back
        return ((first, second) if cron.wildcard_time else (first,)), False
    # Skipped: the clocks jumped over it. fold=1 reads it with the offset after the jump, fold=0
    # with the one before, so the jump lies between the two.
    if cron.wildcard_time:
        return (), False
    return (_jump(wall, tz, after=second, before=first),), False


def _jump(
    wall: datetime.datetime,
    tz: datetime.tzinfo,
    *,
    after: datetime.datetime,
    before: datetime.datetime,
) -> datetime.datetime:
    """The instant the clocks jump over `wall`: the first one whose wall time is later."""
    low, high = 0, int((before - after).total_seconds())
    while low < high:
        middle = (low + high) // 2
        moment = after + datetime.timedelta(seconds=middle)
        if moment.astimezone(tz).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle + 1
    return after + datetime.timedelta(seconds=low)


def _due(
    cron: Cron, tz: datetime.tzinfo, since: datetime.datetime, now: datetime.datetime
) -> tuple[datetime.datetime | None, int]:
    """The most recent scheduled time in (since, now], and how many there are (counted up to
    MISSED_TIMES_LIMIT + 1)."""
    latest = next_after(cron, since, tz)
    if latest > now:
        return None, 0
    count = 1
    while count <= MISSED_TIMES_LIMIT:
        following = next_after(cron, latest, tz)
        if following > now:
            return latest, count
        latest, count = following, count + 1
    return _latest_up_to(cron, tz, now, floor=latest), count


def _latest_up_to(
    cron: Cron, tz: datetime.tzinfo, now: datetime.datetime, *, floor: datetime.datetime
) -> datetime.datetime:
    """The last scheduled time at or before `now`, given one at `floor`: widen a window back
    from `now` until it holds one, rather than step through years of missed minutes."""
    window = datetime.timedelta(minutes=1)
    while True:
        start = max(now - window, floor)
        found = next_after(cron, start, tz)
        if found <= now:
            while (following := next_after(cron, found, tz)) <= now:
                found = following
            return found
        if start == floor:
            return floor
        window *= 2


def decide(
    *,
    cron: Cron,
    tz: datetime.tzinfo,
    now: datetime.datetime,
    last_scheduled: datetime.datetime | None,
    created: datetime.datetime,
    active_runs: Sequence[RunRef],
    suspend: bool,
    concurrency_policy: ConcurrencyPolicy,
    starting_deadline_seconds: int | None,
) -> Decision:
    """What to do now for a scheduled BatchJob, as a CronJob controller would. Every run in
    `active_runs` counts as active; `last_scheduled` is what status recorded."""
    if concurrency_policy not in ("Allow", "Forbid", "Replace"):
        raise ValueError(
            f"concurrencyPolicy {concurrency_policy!r} is not Allow, Forbid or Replace"
        )
    now = _utc(now, "now")
    earliest = _utc(last_scheduled or created, "last_scheduled or created")
    if suspend:
        return Decision(
            outcome="Suspended", start=None, last_scheduled=last_scheduled, next_run=None
        )
    latest, missed = _due(cron, tz, earliest, now)
    if latest is None:
        next_run = next_after(cron, max(now, earliest), tz)
        return Decision(
            outcome="NotDue", start=None, last_scheduled=last_scheduled, next_run=next_run
        )
    next_run = next_after(cron, now, tz)
    if any(run.scheduled == latest for run in active_runs):
        # Made by an earlier decision whose status write did not land.
        return Decision(
            outcome="AlreadyStarted",
            start=None,
            last_scheduled=latest,
            next_run=next_run,
            missed=missed,
        )

    def hold_back(outcome: Outcome, event: ScheduleEvent) -> Decision:
        return Decision(
            outcome=outcome,
            start=None,
            last_scheduled=last_scheduled,
            next_run=next_run,
            skipped=latest,
            missed=missed,
            events=(event,),
        )

    when = _show(latest, tz)
    deadline = None
    if starting_deadline_seconds is not None:
        deadline = datetime.timedelta(seconds=starting_deadline_seconds)
        if latest + deadline < now:
            message = (
                f"missed the scheduled time {when} by more than spec.startingDeadlineSeconds"
                f" ({starting_deadline_seconds} s); the next run is at {_show(next_run, tz)}"
            )
            return hold_back("MissSchedule", ScheduleEvent("Warning", "MissSchedule", message))
    if concurrency_policy == "Forbid" and active_runs:
        names = ", ".join(run.name for run in active_runs)
        message = (
            f"not starting the run scheduled for {when}: {names} is still running and"
            " spec.concurrencyPolicy is Forbid"
        )
        return hold_back("RunAlreadyActive", ScheduleEvent("Normal", "RunAlreadyActive", message))
    return Decision(
        outcome="Start",
        start=latest,
        last_scheduled=latest,
        next_run=next_run,
        stop=tuple(active_runs) if concurrency_policy == "Replace" else (),
        missed=missed,
        events=_catch_up_events(cron, tz, now, earliest, latest, missed, deadline),
    )


def _catch_up_events(
    cron: Cron,
    tz: datetime.tzinfo,
    now: datetime.datetime,
    earliest: datetime.datetime,
    latest: datetime.datetime,
    missed: int,
    deadline: datetime.timedelta | None,
) -> tuple[ScheduleEvent, ...]:
    if missed <= 1:
        return ()
    since = _show(earliest, tz)
    most_recent = f"only the most recent, {_show(latest, tz)}, starts now"
    eligible = missed
    if missed > MISSED_TIMES_LIMIT and deadline is not None and now - deadline > earliest:
        _, eligible = _due(cron, tz, now - deadline, now)
    if eligible > MISSED_TIMES_LIMIT:
        message = (
            f"more than {MISSED_TIMES_LIMIT} scheduled times since {since} had no run;"
            f" {most_recent}. Set or decrease spec.startingDeadlineSeconds, or check the clocks"
        )
        return (ScheduleEvent("Warning", "TooManyMissedTimes", message),)
    count = f"more than {MISSED_TIMES_LIMIT}" if missed > MISSED_TIMES_LIMIT else str(missed)
    message = f"{count} scheduled times since {since} had no run; {most_recent}"
    return (ScheduleEvent("Normal", "MissedSchedules", message),)


def prune_history(
    runs: Sequence[RunRef],
    *,
    successful_limit: int = SUCCESSFUL_JOBS_HISTORY_LIMIT,
    failed_limit: int = FAILED_JOBS_HISTORY_LIMIT,
) -> tuple[list[RunRef], list[RunRef]]:
    """(kept, removed): the newest `successful_limit` succeeded and `failed_limit` failed runs
    stay, with every active one; the older finished ones go, oldest first."""
    if successful_limit < 0 or failed_limit < 0:
        raise ValueError("history limits must be 0 or more")
    removed: list[RunRef] = []
    for state, limit in (("Succeeded", successful_limit), ("Failed", failed_limit)):
        finished = sorted(
            (run for run in runs if run.state == state), key=lambda run: (run.scheduled, run.name)
        )
        removed += finished[: max(len(finished) - limit, 0)]
    gone = {id(run) for run in removed}
    return [run for run in runs if id(run) not in gone], removed


def run_name(job_name: str, scheduled: datetime.datetime) -> str:
    """`<job>-<scheduled time in unix minutes>`, a DNS-1123 label of at most 63 characters, as a
    CronJob names its Jobs. A name that had to be shortened or cleaned keeps a hash of the
    original, so two BatchJobs never share run names."""
    minutes = int(_utc(scheduled, "scheduled").timestamp()) // 60
    if minutes < 0:
        raise ValueError(f"scheduled time {scheduled.isoformat()} is before 1970")
    suffix = f"-{minutes}"
    clean = re.sub(r"[^a-z0-9-]+", "-", job_name.lower()).strip("-")
    if clean == job_name and len(clean) + len(suffix) <= _NAME_LIMIT:
        return clean + suffix
    digest = hashlib.sha256(job_name.encode()).hexdigest()[:8]
    prefix = clean[: _NAME_LIMIT - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{prefix}-{digest}{suffix}" if prefix else digest + suffix


def _utc(moment: datetime.datetime, what: str) -> datetime.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {moment.isoformat()}")
    return moment.astimezone(UTC)


def _show(moment: datetime.datetime, tz: datetime.tzinfo) -> str:
    return moment.astimezone(tz).isoformat()
