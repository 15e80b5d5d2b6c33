"""Outgoing webhooks: when a work order opens at or above a priority, the center posts it
to other systems (a duty chat's robot, a 12345 platform) as plain JSON or in the WeCom
(企业微信) or DingTalk (钉钉) robot format."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from citywatch.config.base import ConfigModel
from citywatch.config.secrets import SecretRef

WebhookFormat = Literal["json", "wecom", "dingtalk"]


class WebhookTarget(ConfigModel):
    """One receiver of new-order notices."""

    url: str = Field(pattern=r"^https?://\S+$", description="where the POST goes")
    format: WebhookFormat = Field(
        default="json",
        description="json: the order as JSON; wecom / dingtalk: a markdown robot message",
    )
    min_priority: int = Field(
        default=1, ge=1, le=4, title="Lowest priority sent",
        description="orders of this priority or a more urgent one (1 is the most urgent)",
    )  # fmt: skip
    secret: SecretRef | None = Field(
        default=None,
        description=(
            "DingTalk robot signing secret (env:, file: or secret:): the URL gets timestamp"
            " and sign (HMAC-SHA256 of timestamp + newline + secret)"
        ),
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="per attempt")
    attempts: int = Field(default=4, ge=1, le=20, description="tries before giving up (logged)")
    retry_s: float = Field(
        default=2.0, gt=0, le=600, description="wait before the second try; doubles after"
    )
