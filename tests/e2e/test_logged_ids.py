"""What a sender chooses never reaches the log as sent: the message id of an ingested
message is logged as a short hash (`log_ref`), so a sender who puts a name, an NHS
number or terminal control characters in it cannot write them into the hub's logs."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
from structlog.testing import capture_logs

from hub.adapters.family import EXAMPLE
from hub.observability import log_ref
from tests.support.api import embedded, running_api

CHOSEN = "Sam Example 9434765919 \x1b[31m2016-02-29"


async def test_a_senders_message_id_is_logged_as_a_short_hash(tmp_path: Path) -> None:
    message = copy.deepcopy(EXAMPLE)
    message["message_id"] = CHOSEN
    async with running_api(embedded(tmp_path)) as api:
        await api.key("family-portal", "agency", "family-portal")
        with capture_logs() as logs:
            r = await api.client.post(
                "/ingest/family",
                content=orjson.dumps(message),
                headers={**api.auth("family-portal"), "content-type": "application/json"},
            )
    assert r.status_code == 200, r.text
    assert r.json()["message_id"] == CHOSEN  # the sender is told its own id back
    [line] = [e for e in logs if e.get("event") == "ingest.message"]
    assert line["message_ref"] == log_ref(CHOSEN)
    assert line["message_ref"].startswith("h:") and len(line["message_ref"]) == 14
    assert "message_id" not in line
    logged = repr(logs)
    assert "9434765919" not in logged and "Sam Example" not in logged
