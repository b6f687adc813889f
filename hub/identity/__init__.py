"""Identity: strong identifiers and their validation, the person index and the match queue."""

from hub.identity.identifiers import (
    FHIR_NHS_NUMBER_SYSTEM,
    Identifier,
    IdSystem,
    InvalidIdentifier,
    check_la_child_id,
    check_nhs_number,
    check_upn,
)

__all__ = [
    "FHIR_NHS_NUMBER_SYSTEM",
    "IdSystem",
    "Identifier",
    "InvalidIdentifier",
    "check_la_child_id",
    "check_nhs_number",
    "check_upn",
]
