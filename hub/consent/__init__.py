"""The consent gate's pure domain core: policy, grantor authority, consent state, the
sharing decision, FHIR Consent interchange, audit hash chains and per-child field
encryption, and the ports the gate keeps its trail and keys behind (`AuditTrail`,
`KeyStore`, each with an in-memory implementation; the others live in `hub.store`).
No I/O beyond reading the policy file; no web, SQL or broker imports.
"""

from hub.consent.audit_chain import (
    AuditRecord,
    VerifyResult,
    canonical_json,
    chain_hash,
    seal,
    verify_chain,
    verify_lines,
)
from hub.consent.audit_trail import AuditEntry, AuditTrail, MemoryAuditTrail
from hub.consent.authority import (
    ConsentAuthorityError,
    check_grantor_authority,
    compulsory_school_age_end,
    lapsed_consents,
)
from hub.consent.crypto import (
    PLACEHOLDER,
    KeyErasedError,
    KeyStore,
    MasterKey,
    MemoryKeyStore,
    decrypt_fields,
    encrypt_fields,
)
from hub.consent.decision import (
    Audience,
    Decision,
    Fact,
    decide_sharing,
    visible_now,
    visible_to,
)
from hub.consent.policy import (
    PolicyError,
    SharingPolicy,
    default_policy_path,
    load_policy,
)
from hub.consent.state import ConsentRecord, ConsentState

__all__ = [
    "PLACEHOLDER",
    "Audience",
    "AuditEntry",
    "AuditRecord",
    "AuditTrail",
    "ConsentAuthorityError",
    "ConsentRecord",
    "ConsentState",
    "Decision",
    "Fact",
    "KeyErasedError",
    "KeyStore",
    "MasterKey",
    "MemoryAuditTrail",
    "MemoryKeyStore",
    "PolicyError",
    "SharingPolicy",
    "VerifyResult",
    "canonical_json",
    "chain_hash",
    "check_grantor_authority",
    "compulsory_school_age_end",
    "decide_sharing",
    "decrypt_fields",
    "default_policy_path",
    "encrypt_fields",
    "lapsed_consents",
    "load_policy",
    "seal",
    "verify_chain",
    "verify_lines",
    "visible_now",
    "visible_to",
]
