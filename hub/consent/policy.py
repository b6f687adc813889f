"""The sharing policy as data: loads and validates `contracts/consent-policy.yaml`.

The policy declares the data categories (sensitivity, the roles that may ever see each,
the UK GDPR Art. 6 basis, Art. 9 condition and confidentiality basis to cite when sharing
rests on consent, retention), the statutory bases that permit sharing without consent,
and the FHIR code systems of the hub's codes. `load_policy()` reads YAML with
`yaml.safe_load` semantics (duplicate keys are rejected), validates it with pydantic
(unknown keys are errors) and cross-checks references, raising `PolicyError` with the
key path of the first problem. Nothing here does I/O beyond reading the one file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
)

from hub.errors import HubError, PermanentError
from hub.events.consent import ConsentException, ConsentRecorded, ConsentScope
from hub.events.envelope import Purpose

Sensitivity = Literal["standard", "special", "highly_sensitive"]
SENSITIVITIES: tuple[str, ...] = get_args(Sensitivity)

REQUIRED_CATEGORIES: tuple[str, ...] = (
    "education",
    "health",
    "social_care",
    "safeguarding",
    "mental_health",
    "sexual_health",
    "family_views",
    "identity",
)

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=400, strip_whitespace=True)]
Uri = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=300)]


class PolicyError(HubError):
    """The policy file is unreadable or malformed; `path` is the offending key path."""

    def __init__(self, reason: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoleSpec(_Strict):
    """A role that may appear in an audience: a hub role or a practitioner role."""

    kind: Literal["hub", "practitioner"]
    description: Text
    agency: Code | None = None


class LawfulBasis(_Strict):
    """What to cite: the Art. 6 basis, the Art. 9 condition (None for data that is not
    special category) and the common-law confidentiality basis."""

    art6: Text
    art9: Text | None
    confidentiality: Text


class RetentionRule(_Strict):
    """Keep until `anchor` + `years`, and at least `min_years_after_last_event` after
    the last fact of the category, when that is set."""

    anchor: Literal["date_of_birth", "last_event"]
    years: int = Field(ge=1, le=150)
    min_years_after_last_event: int | None = Field(default=None, ge=1, le=150)
    source: Text

    def keep_until(self, *, date_of_birth: date, last_event_on: date | None) -> date:
        """The last day records under this rule are kept (erase on the day after)."""
        if self.anchor == "date_of_birth":
            until = add_years(date_of_birth, self.years)
        else:
            until = add_years(last_event_on or date_of_birth, self.years)
        if self.min_years_after_last_event is not None and last_event_on is not None:
            until = max(until, add_years(last_event_on, self.min_years_after_last_event))
        return until


class CategoryPolicy(_Strict):
    """One data category: how sensitive, who may ever see it, what to cite, how long."""

    description: Text
    sensitivity: Sensitivity
    named_consent_only: bool = False
    visible_to: tuple[Code, ...] = Field(min_length=1)
    consent_basis: LawfulBasis
    retention: RetentionRule | None = None
    may_be_sent_as: tuple[Code, ...] = ()
    """The other categories a fact whose event type is of this category may be sent under
    (by the sender, or by an adapter reading its codes); any other is refused."""

    @property
    def special(self) -> bool:
        """Special category data (UK GDPR Art. 9) needs an Art. 9 condition."""
        return self.sensitivity != "standard"


class AudienceSpec(_Strict):
    """Who a statutory basis lets see a fact (further capped by the category)."""

    roles: tuple[Code, ...] = Field(min_length=1)
    agencies: tuple[Code, ...] = ()


class StatutoryBasis(_Strict):
    """A basis that permits sharing without consent when the sender claims it."""

    title: Text
    legislation: Text
    art6: Text
    art9: Text | None
    confidentiality: Text
    categories: tuple[Code, ...] = Field(min_length=1)
    purposes: tuple[Purpose, ...] = Field(min_length=1)
    audience: AudienceSpec
    overrides_refusal: bool = False


class SenderSpec(_Strict):
    """What one kind of sending agency may claim: the statutory bases it may rely on."""

    description: Text
    statutory_bases: tuple[Code, ...] = ()


class FhirSystems(_Strict):
    data_category: Uri
    purpose: Uri
    role: Uri
    agency: Uri
    organisation: Uri
    consent_id: Uri
    child_id: Uri
    grantor: Uri
    extension_base: Uri


class FhirMapping(_Strict):
    """The hub's FHIR code systems and the foreign codes an import accepts."""

    systems: FhirSystems
    class_codes: dict[Uri, dict[str, Code]] = Field(default_factory=dict)
    purpose_codes: dict[Uri, dict[str, Purpose]] = Field(default_factory=dict)


class FamilyAccess(_Strict):
    """The categories a family member sees of their own child's record, by family role
    (their right of access, not sharing: no consent or basis is needed)."""

    legislation: Text
    parent: tuple[Code, ...] = ()
    young_person: tuple[Code, ...] = ()

    def categories_for(self, family_role: str) -> frozenset[str]:
        if family_role == "parent":
            return frozenset(self.parent)
        if family_role == "young_person":
            return frozenset(self.young_person)
        return frozenset()


NEVER_TO_FAMILY = frozenset({"safeguarding"})
"""Categories no family access may name: safeguarding facts are never shown to a family."""


class SharingPolicy(_Strict):
    """The whole sharing policy; build it with `load_policy()` or `parse_policy()`."""

    policy_version: int = Field(ge=1)
    purposes: dict[Purpose, Text]
    roles: dict[Code, RoleSpec]
    categories: dict[Code, CategoryPolicy]
    default_retention: RetentionRule
    statutory_bases: dict[Code, StatutoryBasis] = Field(default_factory=dict)
    senders: dict[Code, SenderSpec] = Field(default_factory=dict)
    event_types_sent_as: dict[str, tuple[Code, ...]] = Field(default_factory=dict)
    """Per event type, further categories its facts may be sent under (beyond its
    category's `may_be_sent_as`)."""
    family_access: FamilyAccess | None = None
    fhir: FhirMapping

    _digest: str = PrivateAttr(default="")

    def model_post_init(self, context: Any, /) -> None:
        body = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        self._digest = hashlib.sha256(body).hexdigest()

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the policy's canonical JSON: decisions name the policy they used."""
        return self._digest

    def category(self, name: str) -> CategoryPolicy | None:
        return self.categories.get(name)

    def may_send_as(self, event_type: str, type_category: str) -> tuple[str, ...]:
        """The categories other than its type's own that a fact of `event_type` may be sent
        under (`categories.*.may_be_sent_as` and `event_types_sent_as`)."""
        own = self.categories.get(type_category)
        general = own.may_be_sent_as if own is not None else ()
        return (*general, *self.event_types_sent_as.get(event_type, ()))

    def retention_for(self, category: str) -> RetentionRule:
        cat = self.categories.get(category)
        if cat is None or cat.retention is None:
            return self.default_retention
        return cat.retention

    def check_consent(self, consent: ConsentRecorded) -> None:
        """Raise `PermanentError` naming the path of the first code in the consent's scope
        or exceptions that this policy does not define (category, role, purpose)."""
        self._check_scope(consent.scope, "scope")
        self._check_exceptions(consent.exceptions, "exceptions")

    def _check_exceptions(self, exceptions: tuple[ConsentException, ...], path: str) -> None:
        for i, exc in enumerate(exceptions):
            self._check_scope(exc.scope, f"{path}[{i}].scope")
            self._check_exceptions(exc.exceptions, f"{path}[{i}].exceptions")

    def _check_scope(self, scope: ConsentScope, path: str) -> None:
        for i, cat in enumerate(scope.categories):
            if cat not in self.categories:
                raise PermanentError(
                    f"unknown data category {cat!r}", field=f"{path}.categories[{i}]"
                )
        for i, role in enumerate(scope.roles):
            if role not in self.roles:
                raise PermanentError(f"unknown role {role!r}", field=f"{path}.roles[{i}]")
        for i, purpose in enumerate(scope.purposes):
            if purpose not in self.purposes:
                raise PermanentError(
                    f"purpose {purpose!r} is not in the policy", field=f"{path}.purposes[{i}]"
                )


def add_years(day: date, years: int) -> date:
    """`day` moved on by whole years; 29 February becomes 1 March in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load semantics, but a key repeated in one mapping is an error, not a
    silent override (a duplicated category must not quietly replace the first)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise PolicyError(
                f"duplicate key {key!r} (line {mark.line + 1}, column {mark.column + 1})"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        return "must be a lower-case code (letters, digits, underscores) or a URI as required"
    return str(err["msg"])


def _first_validation_error(exc: ValidationError) -> PolicyError:
    err = exc.errors(include_url=False)[0]
    # a dict key that fails validation is reported with a trailing "[key]" marker
    parts = tuple(p for p in err["loc"] if p != "[key]")
    return PolicyError(_explain(err), path=_loc(parts))


def _check_family_access(policy: SharingPolicy) -> None:
    access = policy.family_access
    if access is None:
        return
    for family_role in ("parent", "young_person"):
        listed: tuple[str, ...] = getattr(access, family_role)
        base = f"family_access.{family_role}"
        for i, cat_name in enumerate(listed):
            if cat_name not in policy.categories:
                raise PolicyError(f"undefined category {cat_name!r}", path=f"{base}[{i}]")
            if cat_name in NEVER_TO_FAMILY:
                raise PolicyError(
                    f"category {cat_name!r} is never shown to a family", path=f"{base}[{i}]"
                )
        if len(set(listed)) != len(listed):
            raise PolicyError("a category is listed twice", path=base)


def _check_senders(policy: SharingPolicy) -> None:
    for name, cat in policy.categories.items():
        for i, other in enumerate(cat.may_be_sent_as):
            if other not in policy.categories or other == name:
                raise PolicyError(
                    f"undefined or same category {other!r}",
                    path=f"categories.{name}.may_be_sent_as[{i}]",
                )
    for event_type, cats in policy.event_types_sent_as.items():
        for i, other in enumerate(cats):
            if other not in policy.categories:
                raise PolicyError(
                    f"undefined category {other!r}", path=f"event_types_sent_as.{event_type}[{i}]"
                )
    for name, sender in policy.senders.items():
        for i, basis in enumerate(sender.statutory_bases):
            if basis not in policy.statutory_bases:
                raise PolicyError(
                    f"undefined statutory basis {basis!r}",
                    path=f"senders.{name}.statutory_bases[{i}]",
                )


def _cross_check(policy: SharingPolicy) -> None:
    for name in REQUIRED_CATEGORIES:
        if name not in policy.categories:
            raise PolicyError(f"missing required category {name!r}", path="categories")
    for name, cat in policy.categories.items():
        base = f"categories.{name}"
        for i, role in enumerate(cat.visible_to):
            if role not in policy.roles:
                raise PolicyError(f"undefined role {role!r}", path=f"{base}.visible_to[{i}]")
        if len(set(cat.visible_to)) != len(cat.visible_to):
            raise PolicyError("a role is listed twice", path=f"{base}.visible_to")
        if cat.special and cat.consent_basis.art9 is None:
            raise PolicyError(
                f"a {cat.sensitivity} category needs an Art. 9 condition",
                path=f"{base}.consent_basis.art9",
            )
        if not cat.special and cat.consent_basis.art9 is not None:
            raise PolicyError(
                "a standard category is not special category data: art9 must be null",
                path=f"{base}.consent_basis.art9",
            )
    _check_family_access(policy)
    _check_senders(policy)
    for name, basis in policy.statutory_bases.items():
        base = f"statutory_bases.{name}"
        for i, purpose in enumerate(basis.purposes):
            if purpose not in policy.purposes:
                raise PolicyError(f"undefined purpose {purpose!r}", path=f"{base}.purposes[{i}]")
        for i, role in enumerate(basis.audience.roles):
            if role not in policy.roles:
                raise PolicyError(f"undefined role {role!r}", path=f"{base}.audience.roles[{i}]")
        for i, cat_name in enumerate(basis.categories):
            covered = policy.categories.get(cat_name)
            if covered is None:
                raise PolicyError(
                    f"undefined category {cat_name!r}", path=f"{base}.categories[{i}]"
                )
            if covered.special and basis.art9 is None:
                raise PolicyError(
                    f"covers {covered.sensitivity} category {cat_name!r}, so needs an "
                    "Art. 9 condition",
                    path=f"{base}.art9",
                )
            if not set(basis.audience.roles) & set(covered.visible_to):
                raise PolicyError(
                    f"no role of its audience may ever see category {cat_name!r}",
                    path=f"{base}.audience.roles",
                )
    for system, codes in policy.fhir.class_codes.items():
        for code, cat_name in codes.items():
            if cat_name not in policy.categories:
                raise PolicyError(
                    f"undefined category {cat_name!r}", path=f"fhir.class_codes.{system}.{code}"
                )


def parse_policy(data: object) -> SharingPolicy:
    """Validate an already-parsed policy document (a mapping)."""
    if not isinstance(data, dict):
        raise PolicyError("the policy must be a mapping at the top level")
    try:
        policy = SharingPolicy.model_validate(data)
    except ValidationError as exc:
        raise _first_validation_error(exc) from None
    _cross_check(policy)
    return policy


def load_policy(path: str | os.PathLike[str] | None = None) -> SharingPolicy:
    """Read, validate and cross-check the policy file (`default_policy_path()` if None)."""
    file = Path(path) if path is not None else default_policy_path()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file {file}: {exc.__class__.__name__}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(f"not valid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}") from None
    return parse_policy(data)


def default_policy_path() -> Path:
    """The policy shipped inside the package (`hub/_contracts/consent-policy.yaml`, a copy of
    the repository's `contracts/consent-policy.yaml`). A deployment names another with the
    `consent_policy` setting (`HUB_CONSENT_POLICY`, in the environment or `.env`)."""
    from hub.contracts import packaged

    return packaged("consent-policy.yaml")
