"""Identity: strong identifiers and their validation, the subject a record names, the
person index and the match queue (ports, each with an in-memory implementation; the SQL
ones live in `hub.store`)."""

from hub.identity.identifiers import (
    FHIR_NHS_NUMBER_SYSTEM,
    Identifier,
    IdSystem,
    InvalidIdentifier,
    check_la_child_id,
    check_nhs_number,
    check_upn,
)
from hub.identity.subject import Subject

__all__ = [
    "FHIR_NHS_NUMBER_SYSTEM",
    "IdSystem",
    "Identifier",
    "InvalidIdentifier",
    "Subject",
    "check_la_child_id",
    "check_nhs_number",
    "check_upn",
]
