"""A gateway's config made for a test that drives one gateway's session by hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from citywatch.config import CitywatchConfig


def lone_fast_gateway(config: CitywatchConfig, gateway_id: str, tmp_path: Path) -> CitywatchConfig:
    """``config`` with ``gateway_id`` as its only gateway, resending after 3 s (a test waits
    seconds, not the default minute), with up to 100 alerts in flight and its outbox in
    ``tmp_path`` (each test its own)."""
    gateway = next(g for g in config.devices.gateways if g.id == gateway_id)
    fast = gateway.model_copy(
        update={
            "resend_after": timedelta(seconds=3),
            "outbox_path": str(tmp_path / "outbox.sqlite"),
            "alerts_in_flight": 100,
        }
    )
    return config.model_copy(
        update={"devices": config.devices.model_copy(update={"gateways": (fast,)})}
    )
