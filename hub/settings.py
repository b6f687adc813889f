"""Settings of a hub process, from `HUB_*` environment variables and a `.env` file.

The embedded default needs none of them: the log and the read store are SQLite files in
`data_dir`. Setting `HUB_LOG_BACKEND=kafka` and `HUB_STORE_BACKEND=postgres` switches to
the scale-out runtime.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AGENCY_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""An agency as the last segment of its inbound topic `hub.inbound.<agency>` names it."""
ORGANISATION_CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"


class InboundSender(BaseModel):
    """Who publishes on one inbound Kafka topic, as an agency key says it for HTTP: its kind
    of sender in the policy's `senders` (the statutory bases it may claim) and the
    organisation codes it publishes as (empty: it may name none another sender is bound
    to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    organisations: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> InboundSender:
        for code in self.organisations:
            if not code.isascii() or not re.fullmatch(ORGANISATION_CODE, code):
                raise ValueError(
                    "an organisation code is letters, digits and . _ - (ASCII, no spaces), "
                    "at most 32 characters"
                )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default=Path("data"), description="Where the embedded files live")

    # -- the log ----------------------------------------------------------------------
    log_backend: Literal["sqlite", "kafka"] = "sqlite"
    log_partitions: int = Field(default=4, ge=1, le=1024)
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_topic_prefix: str = ""
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_enable_idempotence: bool = True
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    # -- the read store -------------------------------------------------------------
    store_backend: Literal["sqlite", "postgres"] = "sqlite"
    postgres_dsn: SecretStr | None = None
    postgres_schema: str = Field(default="public", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

    # -- projector ------------------------------------------------------------------
    projector_batch: int = Field(default=500, ge=1, le=50_000)
    projector_retries: int = Field(default=3, ge=0, le=20)
    projector_backoff_seconds: float = Field(default=0.2, ge=0)

    # -- ingest ---------------------------------------------------------------------
    ingest_batch_facts: int = Field(
        default=1000,
        ge=1,
        le=50_000,
        description="A message's facts are taken this many at a time, and other requests "
        "take their turn on the write side between batches",
    )

    inbound_senders: dict[str, InboundSender] = Field(
        default_factory=dict,
        description="Who publishes on each inbound Kafka topic: JSON from the topic's agency "
        '(`hub.inbound.<agency>`) to {"sender": KIND, "organisations": [CODE, ...]}; a '
        "message on a topic with no sender here is dead-lettered (`sender.unknown`)",
    )

    # -- HTTP -----------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Larger request bodies are refused 413"
    )
    header_timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=300,
        description="A connection whose request headers are not "
        "all in this long after it opens (or after its last response) is closed",
    )
    body_read_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="A body not all in this long after the hub starts reading it is refused 408",
    )
    keep_alive_timeout_seconds: int = Field(
        default=5, ge=1, le=300, description="An idle keep-alive connection is closed after"
    )

    # -- authentication -------------------------------------------------------------
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    oidc_audience: str | None = None
    oidc_role_claim: str = "hub_role"
    oidc_agency_claim: str = "hub_agency"
    oidc_name_claim: str = "preferred_username"
    oidc_practitioner_claim: str = "hub_practitioner_id"
    oidc_policy_role_claim: str = "hub_policy_role"
    oidc_organisation_claim: str = "hub_organisation"
    oidc_sender_claim: str = Field(
        default="hub_sender",
        description="An agency token's kind of sender in the policy's `senders` (needed to "
        "publish)",
    )
    oidc_organisations_claim: str = Field(
        default="hub_organisations",
        description="An agency token's organisation codes (a list, or one string of codes "
        "separated by spaces; needed to publish)",
    )
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict, description="Maps claim values to hub roles; empty = identity"
    )
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    oidc_client_id: str | None = Field(
        default=None,
        description="The web pages' client id at the issuer; set (with HUB_OIDC_ISSUER), the "
        "sign-in page offers the issuer's sign-in (authorisation code flow with PKCE)",
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="The client's secret, if the issuer gave one (else a public client)",
    )
    oidc_client_key_file: Path | None = Field(
        default=None,
        description="PEM file of the client's RSA private key: set, the hub authenticates "
        "to the token endpoint with a signed client assertion (private_key_jwt, RFC 7523), "
        "as GOV.UK One Login requires; the issuer holds the public key",
    )
    oidc_auth_params: dict[str, str] = Field(
        default_factory=dict,
        description="Further authorisation request parameters, as JSON (GOV.UK One Login: "
        '{"vtr": "[\\"Cl.Cm\\"]", "ui_locales": "en"})',
    )
    oidc_display_name: str = Field(
        default="your organisation's account",
        max_length=80,
        description='Shown on the sign-in button: "Sign in with <this>"',
    )
    oidc_redirect_url: str | None = Field(
        default=None,
        description="The callback address registered at the issuer (…/sign-in/oidc/callback); "
        "unset, it is made from the address the browser used",
    )
    oidc_scopes: str = "openid profile"

    # -- web pages ------------------------------------------------------------------
    web_session_secret: SecretStr | None = Field(
        default=None,
        description="Seals the web pages' session cookies (16+ characters); unset, a key "
        "derived from the master key, so sessions outlive restarts and every process "
        "sharing the master key accepts the others' cookies",
    )

    # -- notifications --------------------------------------------------------------
    notify_enabled: bool = Field(
        default=False, description="`hub serve` runs the notifier loop (`hub notify run` alone)"
    )
    notify_interval_seconds: float = Field(default=300, gt=0, le=86_400)
    notify_base_url: str = Field(
        default="http://127.0.0.1:8000", description="The hub's address, for links in notices"
    )
    notify_default_channel: Literal["email", "notify", "mailbox", "none"] | None = Field(
        default=None,
        description="How a coordinator without a preference is told; unset: email when "
        "HUB_NOTIFY_SMTP_HOST is set, else the local mailbox",
    )
    notify_mailbox_dir: Path | None = Field(
        default=None, description="Where mailbox messages are written (default <data_dir>/mailbox)"
    )
    notify_smtp_host: str | None = None
    notify_smtp_port: int = Field(default=25, ge=1, le=65535)
    notify_smtp_starttls: bool = False
    notify_smtp_timeout_seconds: float = Field(default=30, gt=0, le=600)
    notify_from: str = "tac-hub@localhost"
    notify_govuk_api_key: SecretStr | None = Field(
        default=None, description="GOV.UK Notify API key: the `notify` channel"
    )
    notify_govuk_template_id: str | None = Field(
        default=None, description="GOV.UK Notify email template with ((subject)), ((body))"
    )
    notify_govuk_base_url: str | None = None
    notify_max_attempts: int = Field(default=5, ge=1, le=100)
    notify_backoff_seconds: float = Field(default=30, ge=0, le=86_400)
    notify_lease_seconds: float = Field(default=120, gt=0, le=86_400)
    notify_batch: int = Field(default=50, ge=1, le=10_000)
    notify_lookback_days: int = Field(
        default=7, ge=0, description="Handovers and consent changes older than this are not told"
    )
    notify_unassigned_after_days: int = Field(
        default=1, ge=0, description="A child on nobody's caseload this long is told"
    )
    notify_triage: list[str] = Field(
        default_factory=list,
        description="Coordinators told of children on nobody's caseload (empty: every "
        "coordinator holding any child)",
    )

    # -- keys -----------------------------------------------------------------------
    master_key: SecretStr | None = Field(
        default=None, description="base64 32-byte key wrapping each child's data key"
    )

    # -- the sharing policy --------------------------------------------------------
    consent_policy: Path | None = Field(
        default=None,
        description="The sharing policy file; unset, the one shipped in the package "
        "(contracts/consent-policy.yaml)",
    )

    # -- logging --------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.store_backend == "postgres" and self.postgres_dsn is None:
            raise ValueError("HUB_POSTGRES_DSN is required when HUB_STORE_BACKEND=postgres")
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "HUB_KAFKA_SASL_MECHANISM, HUB_KAFKA_SASL_USERNAME and HUB_KAFKA_SASL_PASSWORD "
                "are required with a SASL security protocol"
            )
        if self.oidc_issuer and not self.oidc_jwks_url:
            raise ValueError("HUB_OIDC_JWKS_URL is required when HUB_OIDC_ISSUER is set")
        if self.oidc_client_id and not self.oidc_issuer:
            raise ValueError("HUB_OIDC_ISSUER is required when HUB_OIDC_CLIENT_ID is set")
        for agency in self.inbound_senders:
            if not re.fullmatch(AGENCY_SEGMENT, agency):
                raise ValueError(
                    f"HUB_INBOUND_SENDERS: {agency!r} is not a topic segment "
                    "(letters, digits, _ and -, at most 64)"
                )
        if self.notify_govuk_api_key and not self.notify_govuk_template_id:
            raise ValueError(
                "HUB_NOTIFY_GOVUK_TEMPLATE_ID is required when HUB_NOTIFY_GOVUK_API_KEY is set"
            )
        return self

    @property
    def inbound_bound_codes(self) -> frozenset[str]:
        """The organisation codes the configured Kafka senders are bound to."""
        return frozenset(c for s in self.inbound_senders.values() for c in s.organisations)

    @property
    def mailbox_dir(self) -> Path:
        return self.notify_mailbox_dir or self.data_dir / "mailbox"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log.db"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.db"
