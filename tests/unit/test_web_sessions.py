"""The web session cookie: what it seals opens only with the same secret, unaltered and
within its lifetime; it never shows the credential it carries; a CSRF token matches only
itself; and sign-in sends a browser on only to a path of this site."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from hub.web.pages import safe_next
from hub.web.sessions import SessionCodec, WebSession
from hub.web.words import days, long_date, state_tag, trail_details

SECRET = b"a secret of at least sixteen bytes"
TOKEN = "thk_0123456789abcdef_secretpartofthekey"


def test_a_sealed_session_opens_with_its_secret_and_hides_the_credential() -> None:
    codec = SessionCodec(SECRET)
    session = WebSession.new(TOKEN)
    sealed = codec.seal(session)
    assert TOKEN not in sealed and "secretpartofthekey" not in sealed
    assert codec.open(sealed) == session
    assert SessionCodec(b"another secret, sixteen bytes+").open(sealed) is None


def test_an_altered_expired_or_foreign_cookie_opens_as_no_session() -> None:
    codec = SessionCodec(SECRET, max_age=60)
    sealed = codec.seal(WebSession.new(TOKEN))
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    assert codec.open(flipped) is None
    assert codec.open("") is None and codec.open(None) is None and codec.open("é") is None
    assert codec.open(Fernet(Fernet.generate_key()).encrypt(b'{"c":"x"}').decode()) is None
    old = codec._fernet.encrypt_at_time(b'{"c": "x", "t": null}', int(time.time()) - 61)
    assert codec.open(old.decode()) is None
    fresh = codec._fernet.encrypt_at_time(b'{"c": "x", "t": null}', int(time.time()) - 30)
    assert codec.open(fresh.decode()) == WebSession(csrf="x")


def test_a_session_body_of_the_wrong_shape_is_no_session() -> None:
    codec = SessionCodec(SECRET)
    for body in (b"[]", b'{"c": 1}', b'{"c": "x", "t": 5}', b"not json"):
        assert codec.open(codec._fernet.encrypt(body).decode()) is None, body


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SessionCodec(b"short")


def test_the_csrf_token_matches_only_itself() -> None:
    session = WebSession.new()
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None) and not session.csrf_matches("")
    assert not session.csrf_matches(WebSession.new().csrf)
    assert len(session.csrf) >= 40


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        (None, "/"),
        ("", "/"),
        ("/child/hc-1", "/child/hc-1"),
        ("/?stage=plan", "/?stage=plan"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("child/hc-1", "/"),
    ],
)
def test_sign_in_sends_the_browser_on_to_a_path_of_this_site_only(
    asked: str | None, goes: str
) -> None:
    assert safe_next(asked) == goes


def test_the_words_of_dates_days_tags_and_trail_details() -> None:
    from datetime import date, datetime

    assert long_date(date(2024, 9, 2)) == "2 September 2024"
    assert long_date(datetime(2024, 9, 2, 14, 5)) == "2 September 2024 at 14:05"
    assert long_date("2024-09-02T14:05:00Z") == "2 September 2024 at 14:05"
    assert long_date("not a date") == "not a date"
    assert [days(n) for n in (0, 1, -1, 5, -3)] == [
        "today", "tomorrow", "yesterday", "in 5 days", "3 days ago"
    ]  # fmt: skip
    assert state_tag("overdue") == "govuk-tag--red" and state_tag("met") == "govuk-tag--green"
    details = {"route": "GET /x", "outcome": "shown", "event_ids": ["a", "b"], "name": "Sam"}
    assert trail_details(details) == "GET /x · shown · 2 facts"


def test_unset_the_session_secret_comes_from_the_master_key(tmp_path: Path) -> None:
    """Processes (and restarts) sharing a master key open each other's cookies; another
    master key, or a configured secret, seals differently."""
    from hub.consent.crypto import MasterKey
    from hub.settings import Settings
    from hub.web import session_secret

    one = MasterKey.generate_base64()
    first = Settings(data_dir=tmp_path / "a", master_key=one, _env_file=None)
    again = Settings(data_dir=tmp_path / "b", master_key=one, _env_file=None)
    sealed = SessionCodec(session_secret(first)).seal(WebSession.new(TOKEN))
    assert SessionCodec(session_secret(again)).open(sealed) is not None
    other = Settings(data_dir=tmp_path / "c", master_key=MasterKey.generate_base64(),
                     _env_file=None)  # fmt: skip
    assert SessionCodec(session_secret(other)).open(sealed) is None
    configured = Settings(data_dir=tmp_path / "a", master_key=one, _env_file=None,
                          web_session_secret=SECRET.decode())  # fmt: skip
    assert session_secret(configured) == SECRET
    embedded = Settings(data_dir=tmp_path / "d", _env_file=None)  # key kept in the data dir
    assert session_secret(embedded) == session_secret(embedded)


def test_building_the_app_writes_nothing_the_secret_is_made_on_first_use(tmp_path: Path) -> None:
    from hub.api.app import create_app
    from hub.settings import Settings

    data = tmp_path / "never-opened"
    app = create_app(Settings(data_dir=data, _env_file=None), run_projector=False)
    assert not data.exists()  # no master key made just to build the app
    sealed = app.state.web_sessions.seal(WebSession.new(TOKEN))
    assert (data / "master.key").is_file() and app.state.web_sessions.open(sealed) is not None
