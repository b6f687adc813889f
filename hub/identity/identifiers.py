"""Strong identifiers of a child, and the rules that make one valid.

NHS numbers (10 digits, modulus-11 check digit) and UPNs (13 characters, check letter)
are validated with python-stdnum; an LA child id is only meaningful with its 3-digit LA
code. An invalid identifier is never used for linking: `check_*` say which rule it
breaks, in words an integrator can act on, without echoing the value.
"""

from __future__ import annotations

import functools
import operator
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from stdnum import exceptions as stdnum_errors
from stdnum.gb import nhs, upn


class IdSystem(StrEnum):
    NHS_NUMBER = "nhs_number"
    UPN = "upn"
    LA_CHILD_ID = "la_child_id"


FHIR_NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


@dataclass(frozen=True, slots=True)
class Identifier:
    """A validated strong identifier, normalised (`value` for LA child ids is `LA:ID`)."""

    system: IdSystem
    value: str

    def __str__(self) -> str:
        return f"{self.system.value}:{self.value}"


class InvalidIdentifier(ValueError):
    """An identifier that breaks a rule. `rule` is short and machine-readable."""

    def __init__(self, system: IdSystem, rule: str, message: str) -> None:
        super().__init__(message)
        self.system = system
        self.rule = rule
        self.message = message


_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2, 1)


def ascii_digits(raw: str) -> str:
    """`raw` with every decimal digit of any script (Arabic-Indic, full-width, Devanagari)
    as its ASCII digit, after NFKC: one identifier has one spelling, so 999 written in
    another script cannot split a child."""
    text = unicodedata.normalize("NFKC", raw)
    return "".join(
        str(unicodedata.decimal(c)) if not c.isascii() and unicodedata.category(c) == "Nd" else c
        for c in text
    )


@functools.lru_cache(maxsize=8192)  # a child is named on many facts, batch after batch
def _compact_nhs_number(raw: str) -> Identifier | None:
    """The identifier of an already compact NHS number whose check digit holds, else None."""
    if sum(map(operator.mul, _NHS_WEIGHTS, map(int, raw))) % 11 == 0:  # nhs.checksum
        return Identifier(IdSystem.NHS_NUMBER, raw)
    return None


def check_nhs_number(raw: str) -> Identifier:
    if type(raw) is str and len(raw) == 10 and raw.isascii() and raw.isdigit():
        # already compact (most senders): stdnum's separator and Unicode clean-up would
        # give it back unchanged, so only the check digit is left to test
        ident = _compact_nhs_number(raw)
        if ident is not None:
            return ident
        raise InvalidIdentifier(
            IdSystem.NHS_NUMBER,
            "check_digit",
            "the NHS number's modulus-11 check digit does not match",
        )
    compact = nhs.compact(ascii_digits(raw or ""))
    if not compact.isdigit() or len(compact) != 10:
        raise InvalidIdentifier(
            IdSystem.NHS_NUMBER, "format", "an NHS number has exactly 10 digits"
        )
    try:
        nhs.validate(compact)
    except stdnum_errors.InvalidChecksum:
        raise InvalidIdentifier(
            IdSystem.NHS_NUMBER,
            "check_digit",
            "the NHS number's modulus-11 check digit does not match",
        ) from None
    except stdnum_errors.ValidationError:
        raise InvalidIdentifier(IdSystem.NHS_NUMBER, "format", "not a valid NHS number") from None
    return Identifier(IdSystem.NHS_NUMBER, compact)


def check_upn(raw: str) -> Identifier:
    compact = upn.compact(ascii_digits(raw or ""))
    if len(compact) != 13:
        raise InvalidIdentifier(IdSystem.UPN, "format", "a UPN has exactly 13 characters")
    try:
        upn.validate(compact)
    except stdnum_errors.InvalidChecksum:
        raise InvalidIdentifier(
            IdSystem.UPN, "check_letter", "the UPN's check letter does not match"
        ) from None
    except stdnum_errors.InvalidComponent:
        raise InvalidIdentifier(
            IdSystem.UPN, "la_code", "the UPN's LA code is not a known local authority"
        ) from None
    except stdnum_errors.ValidationError:
        raise InvalidIdentifier(
            IdSystem.UPN, "format", "a UPN is a check letter, 11 digits and a digit or letter"
        ) from None
    return Identifier(IdSystem.UPN, compact)


_LA_CODE = re.compile(r"^[0-9]{3}$")
_LA_CHILD = re.compile(r"^[A-Za-z0-9/_.-]{1,40}$")


def check_la_child_id(la_code: str, child_id: str) -> Identifier:
    la_code = ascii_digits(la_code or "").strip()
    child_id = ascii_digits(child_id or "").strip()
    if not _LA_CODE.fullmatch(la_code):
        raise InvalidIdentifier(IdSystem.LA_CHILD_ID, "la_code", "an LA code has exactly 3 digits")
    if not _LA_CHILD.fullmatch(child_id):
        raise InvalidIdentifier(
            IdSystem.LA_CHILD_ID,
            "format",
            "an LA child id is 1-40 letters, digits or / _ . -",
        )
    return Identifier(IdSystem.LA_CHILD_ID, f"{la_code}:{child_id}")
