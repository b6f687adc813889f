"""GOV.UK forms over the API's own request models: a form is a list of `Field`s named by
the model's field paths (`decided_on`, `decision.decided_on`, `incoming.practitioner_id`,
`actions.0.text`); what a browser posts is read into the nested dict the API's JSON body
would be (`to_body`), validated by the same pydantic model, and every error (pydantic's,
or the handler's `StepRefused`) is mapped back to the field it names (`errors_of`), in
the words of the GOV.UK error summary: the field's label, then the rule broken.

Dates are GOV.UK date inputs (day, month and year boxes, `<path>-day` and so on); a
blank optional field is left out of the body, so the model's defaults apply exactly as
for an API call that omits it. Pure functions: no request, no hub.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import ValidationError

FieldKind = Literal[
    "date", "text", "textarea", "select", "radios", "checkbox", "checkboxes", "lines"
]
"""`lines`: a textarea whose non-blank lines are a list; `checkbox`: one yes/no box."""

DATE_PARTS = ("day", "month", "year")


@dataclass(frozen=True)
class Field:
    path: str
    label: str
    kind: FieldKind = "text"
    hint: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    """(value, words) of a select, radios or checkboxes."""
    width: str = "govuk-input--width-20"
    name: str | None = None
    """What an error calls the field, where the label is a question."""

    @property
    def error_name(self) -> str:
        return self.name or self.label

    @property
    def id(self) -> str:
        """The element id: the path with `-` for `.`, the day box's for a date."""
        base = self.path.replace(".", "-")
        return f"{base}-day" if self.kind == "date" else base

    @property
    def base_id(self) -> str:
        return self.path.replace(".", "-")


@dataclass(frozen=True)
class FormError:
    field: str
    """The element id the summary links to."""
    text: str
    rule: str | None = None
    path: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "text": self.text,
            "rule": self.rule or "",
            "path": self.path or "",
        }


@dataclass
class Read:
    """A posted form read into the API's body: `body` and the fields' raw `values` (to
    show again), and the errors found while reading (a date that is not a date)."""

    body: dict[str, Any]
    values: dict[str, Any]
    errors: list[FormError] = field(default_factory=list)


def options(
    codes: Iterable[str], words: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """(code, words) for each code: the table's words, else the code in plain words."""
    table = words or {}
    return tuple((c, table.get(c, c.replace("_", " ").capitalize())) for c in codes)


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = body
    for i, part in enumerate(parts[:-1]):
        nxt_is_index = parts[i + 1].isdigit()
        key: Any = int(part) if part.isdigit() else part
        if isinstance(node, list):
            while len(node) <= key:
                node.append({})
            node = node[key]
            continue
        node = node.setdefault(key, [] if nxt_is_index else {})
    last = parts[-1]
    if isinstance(node, list):
        idx = int(last)
        while len(node) <= idx:
            node.append(None)
        node[idx] = value
    else:
        node[last] = value


def _date(
    fld: Field, posted: Mapping[str, list[str]]
) -> tuple[str | None, dict[str, str], FormError | None]:
    parts = {p: (posted.get(f"{fld.path}-{p}") or [""])[0].strip() for p in DATE_PARTS}
    if not any(parts.values()):
        return None, parts, None
    missing = [p for p in DATE_PARTS if not parts[p]]
    if missing:
        text = f"{fld.label} must include a {' and a '.join(missing)}"
        return None, parts, FormError(fld.id, text, "date_incomplete", fld.path)
    try:
        day = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except ValueError:
        return (
            None,
            parts,
            FormError(fld.id, f"{fld.label} must be a real date", "date_real", fld.path),
        )
    if len(parts["year"]) != 4:
        return (
            None,
            parts,
            FormError(fld.id, f"{fld.label}: the year must have 4 digits", "date_year", fld.path),
        )
    return day.isoformat(), parts, None


def to_body(fields: Sequence[Field], posted: Mapping[str, list[str]]) -> Read:
    """The API body the form's fields make (blank optional fields left out)."""
    read = Read(body={}, values={})
    for fld in fields:
        raw = posted.get(fld.path) or []
        if fld.kind == "date":
            value, parts, error = _date(fld, posted)
            read.values[fld.path] = parts
            if error is not None:
                read.errors.append(error)
            elif value is not None:
                _set(read.body, fld.path, value)
        elif fld.kind == "checkbox":
            on = bool(raw) and raw[0] == "yes"
            read.values[fld.path] = on
            _set(read.body, fld.path, on)
        elif fld.kind == "checkboxes":
            chosen = [v for v in raw if v]
            read.values[fld.path] = chosen
            if chosen:  # none ticked: the model's default, as for an API call without it
                _set(read.body, fld.path, chosen)
        elif fld.kind == "lines":
            text = raw[0] if raw else ""
            read.values[fld.path] = text
            _set(read.body, fld.path, [line.strip() for line in text.splitlines() if line.strip()])
        else:
            text = (raw[0] if raw else "").strip()
            read.values[fld.path] = text
            if text:
                _set(read.body, fld.path, text)
    return read


def _label(fields: Sequence[Field], path: str | None) -> tuple[Field | None, str]:
    """The field a path names (the longest field path it starts with; an item of a list
    field, `outcome_ids[0]`, names the list) and its name in errors; for a part the form
    shows as several fields (`decision` of `decision.*`) the first of them; else the
    form's first field, and the path in words."""
    first = fields[0] if fields else None
    if not path:
        return first, ""
    best: Field | None = None
    for fld in fields:
        if (path == fld.path or path.startswith((fld.path + ".", fld.path + "["))) and (
            best is None or len(fld.path) > len(best.path)
        ):
            best = fld
    if best is not None:
        return best, best.error_name
    words = path.replace(".", " ").replace("_", " ").strip().capitalize()
    inside = next((f for f in fields if f.path.startswith(path + ".")), None)
    return inside or first, words


def _words(err: Mapping[str, Any], label: str, kind: FieldKind | None) -> str:
    """A pydantic error in the GOV.UK manner: the field's label and the rule broken."""
    kind_of = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if kind_of == "missing":
        verb = "Select" if kind in ("select", "radios", "checkboxes") else "Enter"
        if not label:
            return "Enter a value"
        what = f"{label[0].lower()}{label[1:]}"
        return (
            f"{verb} the {what}" if kind == "date" and what.startswith("date") else f"{verb} {what}"
        )
    if kind_of.startswith(("date_", "datetime_")):
        return f"{label} must be a real date"
    if kind_of in ("literal_error", "enum"):
        return f"{label}: choose one of the options"
    if kind_of == "string_too_long":
        return f"{label} must be {ctx.get('max_length')} characters or fewer"
    if kind_of == "string_too_short":
        return f"{label} must not be blank"
    if kind_of == "string_pattern_mismatch":
        return f"{label} may have only letters, digits and . _ : / | - (no spaces), as an id"
    if kind_of == "extra_forbidden":
        return f"{label} is not part of this form"
    msg = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{label}: {msg}" if label else msg


def validation_errors(
    fields: Sequence[Field], exc: ValidationError, prefix: str = ""
) -> list[FormError]:
    """Every error pydantic found, each on the field it names."""
    out: list[FormError] = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if ": " in msg and err.get("type") == "value_error":
            named, msg = msg.split(": ", 1)  # a rule across fields names its field first
            loc = f"{loc}.{named}" if loc else named
            err = {**err, "msg": msg}
        path = prefix + loc
        fld, label = _label(fields, path)
        out.append(
            FormError(
                fld.id if fld else "main-content",
                _words(err, label, fld.kind if fld else None),
                str(err.get("type", "")),
                path,
            )
        )
    return _first_per_field(out)


def refusal_error(fields: Sequence[Field], rule: str, path: str | None, message: str) -> FormError:
    """The handler's refusal (`StepRefused` and the like) on the field it names."""
    fld, label = _label(fields, path)
    text = f"{label}: {message}" if label and path else message
    return FormError(fld.id if fld else "main-content", text, rule, path)


def _first_per_field(errors: Sequence[FormError]) -> list[FormError]:
    seen: set[str] = set()
    out = []
    for e in errors:
        if e.field not in seen:
            seen.add(e.field)
            out.append(e)
    return out


def error_for(errors: Sequence[Mapping[str, str]], fld: Field) -> str | None:
    """The error message shown above the field, if the form has one for it."""
    return next((e["text"] for e in errors if e["field"] in (fld.id, fld.base_id)), None)


def field_of(path: str, label: str, kind: FieldKind = "text", **more: Any) -> Field:
    """A field made in a template (the search form's, whose model is the query's)."""
    return Field(path, label, kind, **more)


TEMPLATE_GLOBALS = {"form_error": error_for, "field_of": field_of}
