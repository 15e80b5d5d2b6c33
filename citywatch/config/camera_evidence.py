"""What a camera keeps as evidence for each alert: snapshot, crop, clip, and the disk budget.

Apart from the camera config so that each stays a module one can read in a sitting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from citywatch.config.base import ConfigModel, Duration

__all__ = ["EvidenceConfig"]


class EvidenceConfig(ConfigModel):
    """What each alert carries: an annotated snapshot and a crop always, the clean frame and
    a clip on request (both on by default).

    The clean frame is the snapshot's frame as the camera saw it, without zones, box or label
    drawn: the learning loop (``citywatch model dataset``) trains on it, since a drawn box
    would teach the model to find drawn boxes and the crop's margins cut objects off. It
    costs one full-size JPEG per alert (about the snapshot's size) on disk and on the
    uplink: a site short of either turns it off, and its alerts then cannot become
    training images.
    """

    frame: bool = Field(
        default=True,
        description="keep the un-annotated frame of each snapshot (training images for"
        " `citywatch model dataset`); off saves one full-size JPEG per alert on disk and uplink",
    )
    clip: bool = Field(default=True, description="record a short clip around each episode start")
    clip_before: Duration = Field(
        default=timedelta(seconds=4), description="clip length before the episode starts"
    )
    clip_after: Duration = Field(
        default=timedelta(seconds=4), description="clip length after the episode starts"
    )
    clip_width_px: int = Field(
        default=640, ge=160, le=3840, description="clip frames are scaled down to this width"
    )
    clip_fps: float = Field(
        default=5.0,
        gt=0,
        le=30,
        description="frames per second kept for clips (at most the detection rate)",
    )
    clip_format: Literal["webm", "mp4"] = Field(
        default="webm",
        description="webm (VP8) plays in every browser, the console included; mp4 (MPEG-4"
        " part 2) takes about a seventh of the CPU to encode, but browsers cannot play it"
        " (the console offers it as a download)",
    )
    max_disk: int = Field(
        default=2_000_000_000,
        ge=10_000_000,
        description="bytes of evidence kept on the gateway; the oldest files go first",
    )
