"""The quarantine: a rejected alert is kept on disk with its reason, never deleted silently;
an operator lists, shows, re-queues and purges it (also through `citywatch edge quarantine`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.edge.outbox import Outbox
from citywatch.edge.quarantine import NO_REASON, QuarantineFile

CONFIG = Path(__file__).parents[2] / "configs" / "demo-district.yaml"
GATEWAY = "gw-sensors-east"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / f"outbox-{GATEWAY}.sqlite", resend_after_s=30.0)
    yield box
    box.close()


def put_alert(box: Outbox, message_id: str, device: str = "s1", now: float = 0.0) -> None:
    payload = json.dumps({"type": "alert", "id": message_id, "rule": "depth\u0000level"})
    box.put(message_id, f"cw/{device}/alerts", payload.encode(), 1, "alert", device, now)


def test_rejected_alert_moves_to_the_quarantine_with_its_reason_and_is_not_due(
    outbox: Outbox,
) -> None:
    """quarantine() takes the alert out of the outbox (no resend) and keeps why and when."""
    put_alert(outbox, "a1")
    put_alert(outbox, "a2")
    assert outbox.quarantine("a1", "NUL byte in rule", rejected_at=1000.0, now=1001.0)
    assert [i.message_id for i in outbox.due(now=1e6)] == ["a2"]
    assert (len(outbox), outbox.health().quarantined) == (1, 1)
    health = outbox.health()
    assert (health.last_rejection, health.last_rejection_at) == ("NUL byte in rule", 1001.0)
    (kept,) = outbox.quarantined()
    assert (kept.message_id, kept.device_id, kept.reason) == ("a1", "s1", "NUL byte in rule")
    assert (kept.rejected_at, kept.quarantined_at) == (1000.0, 1001.0)
    assert json.loads(kept.payload)["id"] == "a1"


def test_quarantine_survives_a_restart_and_an_unknown_id_is_not_quarantined(
    tmp_path: Path,
) -> None:
    """The move is durable; a rejection for an id not pending changes nothing."""
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        put_alert(box, "a1")
        assert box.quarantine("a1", None, rejected_at=None, now=5.0)
        assert not box.quarantine("a1", "again", rejected_at=None, now=6.0)
        assert not box.quarantine("never-sent", "x", rejected_at=None, now=6.0)
    with Outbox(path) as box:
        assert (len(box), box.health().quarantined) == (0, 1)
        assert (box.health().last_rejection, box.health().last_rejection_at) == (NO_REASON, 5.0)


def test_requeue_puts_the_alert_back_as_new_and_the_running_outbox_sees_it(
    outbox: Outbox,
) -> None:
    """A re-queue from the operator's file handle is due at once in the agent's outbox."""
    put_alert(outbox, "a1")
    outbox.record_published(outbox.due(now=0.0), now=0.0)
    outbox.quarantine("a1", "bad depth", rejected_at=1.0, now=2.0)
    with closing(QuarantineFile(outbox.path)) as quarantine:
        assert quarantine.requeue(["a1", "unknown"], now=10.0) == ["a1"]
        assert quarantine.count() == 0
    (item,) = outbox.due(now=10.0)
    assert (item.message_id, item.attempts, item.last_sent_at) == ("a1", 0, None)
    outbox.resync()
    assert (len(outbox), outbox.health().quarantined) == (1, 0)


def test_requeue_leaves_an_id_that_is_pending_again_in_the_quarantine(outbox: Outbox) -> None:
    """Two copies of one alert are never pending: the quarantined one waits."""
    put_alert(outbox, "a1")
    outbox.quarantine("a1", "bad", rejected_at=None, now=1.0)
    put_alert(outbox, "a1", now=2.0)  # the device sent the same alert again
    with closing(QuarantineFile(outbox.path)) as quarantine:
        assert quarantine.requeue(None, now=3.0) == []
        assert quarantine.count() == 1


def test_purge_deletes_only_the_named_alerts_or_all(outbox: Outbox) -> None:
    """Purging is explicit: by id, or everything with None."""
    for message_id in ("a1", "a2", "a3"):
        put_alert(outbox, message_id)
        outbox.quarantine(message_id, "bad", rejected_at=None, now=1.0)
    with closing(QuarantineFile(outbox.path)) as quarantine:
        assert quarantine.purge(["a2", "zz"]) == ["a2"]
        assert sorted(m.message_id for m in quarantine.entries()) == ["a1", "a3"]
        assert quarantine.purge(None) == ["a1", "a3"]
        assert quarantine.count() == 0


def test_quarantine_file_refuses_a_missing_outbox(tmp_path: Path) -> None:
    """A wrong gateway or data dir is an error naming what to check, not a new empty file."""
    with pytest.raises(FileNotFoundError, match="--gateway and --data-dir"):
        QuarantineFile(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()


# -- the CLI -----------------------------------------------------------------------------------
def cli(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["edge", "quarantine", *args, "--gateway", GATEWAY, "--config", str(CONFIG),
         "--data-dir", str(data_dir)],
    )  # fmt: skip
    return result.exit_code, result.output


@pytest.fixture
def quarantined(tmp_path: Path) -> Path:
    """A real outbox file of the demo's sensor gateway with two rejected alerts."""
    with Outbox(tmp_path / f"outbox-{GATEWAY}.sqlite") as box:
        for message_id in ("s1.e.0", "s1.e.1"):
            put_alert(box, message_id)
            box.quarantine(message_id, f"{message_id}: NUL byte in rule", 1.7e9, 1.7e9 + 1)
    return tmp_path


def test_cli_lists_quarantined_alerts_with_reason(quarantined: Path) -> None:
    """`list` shows id, device, kind, reason and the time (UTC) of each alert."""
    code, output = cli(quarantined, "list")
    assert code == 0, output
    assert "2 alert(s)" in output and "s1.e.0" in output and "s1.e.1" in output
    assert "NUL byte" in output and "2023-11-14" in output


def test_cli_shows_one_alert_as_json_with_the_reason(quarantined: Path) -> None:
    """`show` prints the message as sent and why it was rejected."""
    code, output = cli(quarantined, "show", "s1.e.1")
    assert code == 0, output
    shown = json.loads(output)
    assert shown["reason"] == "s1.e.1: NUL byte in rule"
    assert shown["message"]["id"] == "s1.e.1" and shown["device"] == "s1"
    assert cli(quarantined, "show", "nope")[0] == 1


def test_cli_requeue_moves_named_alerts_back_to_the_outbox(quarantined: Path) -> None:
    """`requeue ID` puts it back in the outbox; an unknown id fails the command."""
    code, output = cli(quarantined, "requeue", "s1.e.0")
    assert code == 0, output
    with Outbox(quarantined / f"outbox-{GATEWAY}.sqlite") as box:
        assert [i.message_id for i in box.due(now=0.0)] == ["s1.e.0"]
        assert box.health().quarantined == 1
    assert cli(quarantined, "requeue", "s1.e.0")[0] == 1
    code, output = cli(quarantined, "requeue", "--all")
    assert code == 0 and "1 alert(s) re-queued" in output


def test_cli_purge_needs_ids_or_all_and_a_confirmation(quarantined: Path) -> None:
    """`purge` without ids, without --yes, or with both ids and --all deletes nothing."""
    assert cli(quarantined, "purge", "--yes")[0] == 2
    assert cli(quarantined, "purge", "s1.e.0")[0] == 2
    assert cli(quarantined, "purge", "s1.e.0", "--all", "--yes")[0] == 2
    with closing(QuarantineFile(quarantined / f"outbox-{GATEWAY}.sqlite")) as quarantine:
        assert quarantine.count() == 2
    code, output = cli(quarantined, "purge", "s1.e.0", "--yes")
    assert code == 0 and "1 alert(s) purged" in output
    code, output = cli(quarantined, "purge", "--all", "--yes")
    assert code == 0 and "1 alert(s) purged" in output
    code, output = cli(quarantined, "list")
    assert code == 0 and "is empty" in output


def test_cli_names_a_missing_outbox(tmp_path: Path) -> None:
    """An empty data dir: exit 1 with a hint, and no file created."""
    code, output = cli(tmp_path, "list")
    assert code == 1 and "no outbox at" in output
    assert not list(tmp_path.iterdir())
