"""Reading a posted GOV.UK form into the API's JSON body, and mapping the model's errors
back to the fields they name (`hub.web.forms`), on the API's own request models."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from hub.api.routes_plans import DecisionIn, MeetingIn, ReviewIn, review_steps
from hub.service_layer.plan_steps import StepRefused
from hub.web.forms import Field, refusal_error, to_body, validation_errors
from hub.web.step_forms import DECISION, MEETING, REVIEW, STEP_FORMS


def fields_of(form: object) -> list[Field]:
    return [f for _, fs in form.sections for f in fs]  # type: ignore[attr-defined]


def test_a_date_is_three_boxes_and_a_blank_optional_field_is_left_out() -> None:
    posted = {
        "decision": ["assess"],
        "decided_on-day": ["2"],
        "decided_on-month": ["09"],
        "decided_on-year": ["2024"],
        "letter.document_id": [""],
        "letter.system": ["  "],
    }
    read = to_body(fields_of(DECISION), posted)
    assert read.errors == []
    assert read.body == {"decision": "assess", "decided_on": "2024-09-02"}
    assert DecisionIn.model_validate(read.body).decided_on == date(2024, 9, 2)
    assert read.values["decided_on"] == {"day": "2", "month": "09", "year": "2024"}


@pytest.mark.parametrize(
    ("parts", "rule", "words"),
    [
        (("31", "2", "2024"), "date_real", "Date of the decision must be a real date"),
        (("1", "", "2024"), "date_incomplete", "Date of the decision must include a month"),
        (("", "", "2024"), "date_incomplete", "must include a day and a month"),
        (("1", "2", "24"), "date_year", "the year must have 4 digits"),
        (("x", "2", "2024"), "date_real", "must be a real date"),
    ],
)
def test_a_date_that_is_not_one_is_named_on_its_day_box(
    parts: tuple[str, str, str], rule: str, words: str
) -> None:
    day, month, year = parts
    posted = {"decided_on-day": [day], "decided_on-month": [month], "decided_on-year": [year]}
    [error] = to_body(fields_of(DECISION), posted).errors
    assert (error.field, error.rule, error.path) == ("decided_on-day", rule, "decided_on")
    assert words in error.text
    assert "decided_on" not in to_body(fields_of(DECISION), posted).body


def test_nested_and_listed_paths_make_the_apis_nested_body() -> None:
    posted = {
        "held_on-day": ["5"],
        "held_on-month": ["3"],
        "held_on-year": ["2024"],
        "kind": ["tac"],
        "attendee_ids": ["salt-42\n\n ep-9 \n"],
        "family_attended": ["yes"],
        "decisions": [""],
        "actions.0.text": ["Book the sensory assessment"],
        "actions.0.owner_id": ["ot-3"],
        "actions.0.due_on-day": ["2"],
        "actions.0.due_on-month": ["4"],
        "actions.0.due_on-year": ["2024"],
    }
    read = to_body(fields_of(MEETING), posted)
    assert read.body["attendee_ids"] == ["salt-42", "ep-9"]
    assert read.body["family_attended"] is True and read.body["decisions"] == []
    assert read.body["actions"] == [
        {"text": "Book the sensory assessment", "owner_id": "ot-3", "due_on": "2024-04-02"}
    ]
    assert MeetingIn.model_validate(read.body).actions[0].owner_id == "ot-3"
    unticked = to_body(fields_of(STEP_FORMS["key-worker"]), {"functions": []}).body
    assert "functions" not in unticked  # the model's default (all ten), as the API's


def test_each_pydantic_error_lands_on_the_field_it_names_in_words() -> None:
    fields = fields_of(MEETING)
    body = {
        "kind": "picnic",
        "attendee_ids": ["has spaces"],
        "actions": [{"text": "x", "owner_id": "ot-3"}],
    }
    with pytest.raises(ValidationError) as exc:
        MeetingIn.model_validate(body)
    errors = {e.field: (e.rule, e.text) for e in validation_errors(fields, exc.value)}
    assert errors["held_on-day"] == ("missing", "Enter the date of the meeting")
    assert errors["kind"] == ("literal_error", "Kind of meeting: choose one of the options")
    assert errors["attendee_ids"][0] == "string_pattern_mismatch"
    assert errors["actions-0-due_on-day"] == ("missing", "Enter the due date")


def test_a_handler_refusal_names_its_field_or_else_the_part_in_words() -> None:
    fields = fields_of(REVIEW)
    with pytest.raises(StepRefused) as exc:
        review_steps(ReviewIn.model_validate({}))
    error = refusal_error(fields, exc.value.rule, exc.value.field, exc.value.message)
    assert (error.field, error.rule) == ("held_on-day", "review_needs_a_step")
    assert error.text.startswith("Date of the meeting: give the meeting")
    questioned = refusal_error(fields_of(DECISION), "already_decided", "decision", "done")
    assert questioned.text == "The decision: done"  # the noun, not the question
    elsewhere = refusal_error(fields, "r", "report.document_id", "unknown document")
    assert elsewhere.text == "Report document id: unknown document"
    assert elsewhere.field == fields[0].id  # linked to the form's first field
