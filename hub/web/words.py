"""The words the pages use for the hub's codes: statuses, stages and milestone states as
a coordinator, a practitioner or a family reads them, and the GOV.UK tag colour of each.
Pure functions, registered as Jinja filters by `hub.web.pages`."""

from __future__ import annotations

from datetime import date, datetime

STAGE_WORDS: dict[str, str] = {
    "enter": "Enter",
    "listen_and_understand": "Listen and understand",
    "agree_and_allocate": "Agree and allocate",
    "plan": "Plan",
    "review_and_learn": "Review and learn",
}

STATUS_WORDS: dict[str, str] = {
    "requested": "Request received",
    "assessing": "Assessing",
    "drafting": "Draft issued",
    "final": "Final plan issued",
    "reviewing": "Under review",
    "amending": "Amendments proposed",
    "reassessing": "Re-assessing",
    "refused": "Refused to assess",
    "no_plan": "No plan issued",
    "ceased": "Plan ceased",
}

FAMILY_STATUS_WORDS: dict[str, str] = {
    "requested": "The council has your request for an assessment and is deciding whether "
    "to assess.",
    "assessing": "The council is assessing: it is gathering advice from the people who "
    "work with your child.",
    "drafting": "The council has sent a draft plan. You can comment on it and name a "
    "school or college.",
    "final": "The plan is final and is being delivered.",
    "reviewing": "The plan has been reviewed and the council is deciding what changes.",
    "amending": "The council has proposed changes to the plan. You can comment on them.",
    "reassessing": "The council is assessing your child's needs again.",
    "refused": "The council decided not to assess. You can ask for mediation or appeal.",
    "no_plan": "After the assessment, the council decided not to issue a plan.",
    "ceased": "The plan has ended.",
}

STATE_WORDS: dict[str, str] = {
    "met": "Met",
    "due": "Due",
    "due_soon": "Due soon",
    "overdue": "Overdue",
    "paused": "Paused",
    "expected": "Expected",
    "past_expected": "Past expected date",
    "period_open": "Open",
    "period_ended": "Ended",
    "not_applicable": "Not applicable",
    "submitted_on_time": "Submitted on time",
    "submitted_late": "Submitted late",
    "outstanding": "Outstanding",
    "not_submitted": "Not submitted",
    "open": "Open",
    "done": "Done",
}

STATE_TAGS: dict[str, str] = {
    "met": "govuk-tag--green",
    "submitted_on_time": "govuk-tag--green",
    "done": "govuk-tag--green",
    "period_ended": "govuk-tag--grey",
    "not_applicable": "govuk-tag--grey",
    "due": "govuk-tag--blue",
    "expected": "govuk-tag--blue",
    "period_open": "govuk-tag--blue",
    "open": "govuk-tag--blue",
    "outstanding": "govuk-tag--blue",
    "due_soon": "govuk-tag--yellow",
    "past_expected": "govuk-tag--yellow",
    "submitted_late": "govuk-tag--orange",
    "paused": "govuk-tag--purple",
    "overdue": "govuk-tag--red",
    "not_submitted": "govuk-tag--red",
}

AGENCY_WORDS: dict[str, str] = {
    "local_authority": "Local authority",
    "education": "Education",
    "health": "Health",
    "social_care": "Social care",
    "family": "Family",
}


def words(code: str | None, table: dict[str, str]) -> str:
    """The table's words for the code, else the code with its underscores as spaces."""
    if code is None:
        return ""
    return table.get(code, code.replace("_", " ").capitalize())


def stage(code: str | None) -> str:
    return words(code, STAGE_WORDS)


def status(code: str | None) -> str:
    return words(code, STATUS_WORDS)


def family_status(code: str | None) -> str:
    return words(code, FAMILY_STATUS_WORDS)


def state(code: str | None) -> str:
    return words(code, STATE_WORDS)


def state_tag(code: str | None) -> str:
    """The GOV.UK tag modifier class for a state (none: the default blue)."""
    return STATE_TAGS.get(code or "", "")


def agency(code: str | None) -> str:
    return words(code, AGENCY_WORDS)


def long_date(value: date | datetime | str | None) -> str:
    """`2 September 2024` (with the time for a datetime), as GOV.UK writes dates."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return f"{value:%-d %B %Y at %H:%M}"
    return f"{value:%-d %B %Y}"


def days(n: int | None) -> str:
    """`in 3 days`, `today`, `5 days ago`."""
    if n is None:
        return ""
    if n == 0:
        return "today"
    if n == 1:
        return "tomorrow"
    if n == -1:
        return "yesterday"
    return f"in {n} days" if n > 0 else f"{-n} days ago"


TRAIL_KEYS = ("route", "outcome", "decision", "reason", "basis", "consent_id", "plan_id", "as")


def trail_details(details: object) -> str:
    """The parts of an audit record's details an auditor scans for, ` · ` between them
    (the record's other details, such as the fact ids shown, are in the export)."""
    if not isinstance(details, dict):
        return ""
    parts = [f"{details[k]}" for k in TRAIL_KEYS if isinstance(details.get(k), str | int)]
    shown = details.get("event_ids")
    if isinstance(shown, list) and shown:
        parts.append(f"{len(shown)} facts")
    return " · ".join(parts)


FILTERS = {
    "trail_details": trail_details,
    "stage": stage,
    "status": status,
    "family_status": family_status,
    "state": state,
    "state_tag": state_tag,
    "agency": agency,
    "long_date": long_date,
    "days": days,
}
