"""Detectors: which model a camera runs, how it reads its output, and the smoke second opinion.

The default runs the bundled street model through onnxruntime (no torch on a gateway). A
model's class names reach citywatch through ``class_map``, so a model trained with other
names (``automobile``, ``fire_smoke``) serves the same rules without retraining; a name the
map does not list is compared in lower case (a model's ``Smoke`` is citywatch's ``smoke``).
A camera may run several detectors (``detectors:``), e.g. a COCO model for vehicles and
people beside a fire/smoke model, or the weight-free classical smoke detector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from citywatch.config.base import ConfigModel

__all__ = [
    "BUNDLED_WEIGHTS",
    "DetectorBackend",
    "DetectorConfig",
    "ModelBackend",
    "SmokeOpinionConfig",
    "canonical_class",
]

ModelBackend = Literal["onnx", "ultralytics"]
"""The backends that run a YOLO model from weights."""
DetectorBackend = Literal["onnx", "ultralytics", "classical"]

SMOKE_CLASS = "smoke"
"""The citywatch class the smoke rules and the smoke cues speak of."""

BUNDLED_WEIGHTS: dict[ModelBackend, str] = {
    "onnx": "street/citywatch-street.onnx",
    "ultralytics": "street/citywatch-street.pt",
}
"""The bundled street model per backend, relative to the repository's ``models/`` folder."""


class SmokeOpinionConfig(ConfigModel):
    """Thresholds of the classical smoke detector (motion, colour, texture, persistence).

    Defaults suit a street camera at about 5 detections a second; the detector works on a
    copy scaled to ``work_width_px`` so the pixel-sized knobs do not depend on the camera.
    """

    work_width_px: int = Field(
        default=320,
        ge=64,
        le=1920,
        title="Working width",
        description="frames are scaled to this width (pixels) before analysis",
    )
    background_alpha: float = Field(
        default=0.05,
        gt=0,
        le=1,
        title="Background learning rate",
        description="share of a still pixel's new value that enters the background per frame",
    )
    foreground_alpha: float = Field(
        default=0.002,
        ge=0,
        le=1,
        title="Foreground learning rate",
        description="how fast a lasting change (smoke included) is absorbed into the background",
    )
    diff_threshold: int = Field(
        default=14,
        ge=1,
        le=255,
        title="Motion threshold",
        description="grey-level change from the background that counts as motion",
    )
    max_saturation: int = Field(
        default=70,
        ge=0,
        le=255,
        title="Maximum saturation",
        description="HSV saturation (0–255) above which a pixel is too colourful for smoke",
    )
    min_brightness: int = Field(
        default=90,
        ge=0,
        le=255,
        title="Minimum brightness",
        description="HSV value (0–255) below which a pixel is too dark for grey-white smoke",
    )
    dark_smoke: bool = Field(
        default=False,
        title="Dark smoke",
        description=(
            "also count grey veils that darken the scene (burning rubbish, tyres) besides"
            " grey-white ones; a still shadow can pass for one, hence off by default. Faint"
            " dark smoke over dark asphalt needs a lower motion threshold (about 8)"
        ),
    )
    min_texture_ratio: float = Field(
        default=0.08,
        ge=0,
        le=1,
        title="Minimum texture ratio",
        description=(
            "local RMS gradient over the background's: below this the background is hidden"
            " (a solid object), not veiled"
        ),
    )
    max_texture_ratio: float = Field(
        default=0.85,
        gt=0,
        le=2,
        title="Maximum texture ratio",
        description="above this the place is as sharp as the background: no veil of smoke",
    )
    min_structure_correlation: float = Field(
        default=0.6,
        ge=-1,
        le=1,
        title="Minimum structure correlation",
        description=(
            "correlation of local gradients with the background's: a veil keeps the"
            " background's edges (near 1), a solid object replaces them (near 0)"
        ),
    )
    min_background_texture: float = Field(
        default=16.0,
        ge=0,
        title="Minimum background texture",
        description=(
            "RMS Sobel gradient (grey levels) below which the background is too flat to"
            " judge a veil; there only new edges rule smoke out. Sensor noise alone gives about 10"
        ),
    )
    persistence_frames: int = Field(
        default=4,
        ge=1,
        le=100,
        title="Persistence",
        description="frames a pixel must look like smoke (at the same place) before it counts",
    )
    drift_window_frames: int = Field(
        default=10,
        ge=2,
        le=200,
        title="Drift window",
        description="frames over which a smoke blob must stay in place",
    )
    max_drift: float = Field(
        default=0.6,
        ge=0,
        title="Maximum drift",
        description=(
            "how far a smoke blob's centre may travel over the drift window, in blob sizes"
            " (square root of its area): a plume grows in place, a car moves on"
        ),
    )
    max_outline_sharpness: float = Field(
        default=40.0,
        ge=0,
        title="Maximum outline sharpness",
        description=(
            "RMS gradient (grey levels) a blob's outline may add to the background's: a veil"
            " fades out, a solid object ends in a sharp edge"
        ),
    )
    min_area_fraction: float = Field(
        default=0.004,
        gt=0,
        le=1,
        title="Minimum area",
        description="smallest smoke region as a share of the frame",
    )
    min_change_fraction: float = Field(
        default=0.15,
        gt=0,
        le=1,
        title="Corroborating change",
        description=(
            "share of a weak smoke box (detector.corroborated_smoke) that must have turned"
            " grey against the running background for the box to be kept"
        ),
    )
    min_box_fraction: float = Field(
        default=0.15,
        gt=0,
        le=1,
        title="Second-opinion cover",
        description="share of another detector's box that must look like smoke to confirm it",
    )

    @model_validator(mode="after")
    def _texture_band_is_ordered(self) -> SmokeOpinionConfig:
        if self.min_texture_ratio >= self.max_texture_ratio:
            raise ValueError(
                f"min_texture_ratio ({self.min_texture_ratio}) must be below max_texture_ratio"
                f" ({self.max_texture_ratio})"
            )
        return self


class DetectorConfig(ConfigModel):
    """One camera's object detector."""

    backend: DetectorBackend = Field(
        default="onnx",
        title="Backend",
        description=(
            "'onnx': onnxruntime and numpy only, for light gateways; 'ultralytics': any"
            " weights ultralytics loads (.pt, .onnx, an OpenVINO folder), needs torch;"
            " 'classical': the weight-free smoke detector (classical_smoke's thresholds),"
            " reporting 'smoke' boxes"
        ),
    )
    weights: Path | None = Field(
        default=None,
        title="Weights",
        description=(
            "model file (or OpenVINO folder); empty = the bundled street model for the backend;"
            " a relative path is read from the repository's models/ folder"
        ),
    )
    imgsz: int = Field(
        default=320,
        ge=32,
        le=4096,
        multiple_of=32,
        title="Inference size",
        description=(
            "pixels the frame's long side is scaled to (the short side follows, padded to the"
            " model stride; see input_shape); a multiple of 32 (the bundled model was trained"
            " at 320; set your model's size: `citywatch config check` warns below it). An ONNX"
            " model exported with a fixed size uses its own size"
        ),
    )
    input_shape: Literal["frame", "square"] = Field(
        default="frame",
        title="Input shape",
        description=(
            "frame: the frame scaled to imgsz on its long side and padded only to the"
            " model stride (320×192 for a 16:9 frame at 320, as ultralytics predicts;"
            " about 1.5× faster than the square); square: padded to imgsz × imgsz. An ONNX"
            " model exported with a fixed size is always padded to its own size"
        ),
    )
    every_n_frames: int = Field(
        default=1,
        ge=1,
        le=100,
        title="Every N frames",
        description=(
            "run this detector on every Nth processed frame and reuse its boxes in between:"
            " a slow second model (fire/smoke) beside a fast one; 1 = every frame"
        ),
    )
    classes: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        title="Classes",
        description=(
            "citywatch classes (after class_map) this detector contributes; its other"
            " boxes are dropped, e.g. [car, truck, bus, person] from a COCO model."
            " Empty = all"
        ),
    )
    confidence: float = Field(
        default=0.25, ge=0, le=1, title="Confidence", description="drop boxes scored below this"
    )
    iou: float = Field(
        default=0.5,
        ge=0,
        le=1,
        title="NMS IoU",
        description="overlap above which the weaker of two boxes of one class is dropped",
    )
    class_confidence: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict,
        title="Per-class confidence",
        description=(
            "citywatch class → its own floor instead of `confidence`, e.g. {smoke: 0.1}:"
            " a plume scores low while it is young or dark, and the smoke rule's persistence"
            " window is what keeps its stray boxes out; vehicles keep the stricter floor"
        ),
    )
    corroborated_smoke: float | None = Field(
        default=None,
        ge=0,
        le=1,
        title="Corroborated smoke floor",
        description=(
            "smoke boxes scored from this up to smoke's own floor are kept only where the"
            " frame has turned grey against a running background over"
            " classical_smoke.min_change_fraction of the box: a young or dark plume scores"
            " low but moves, a still umbrella the model half takes for smoke does not."
            " Empty = off; costs ~0.2 ms a 1280×720 frame"
        ),
    )
    class_map: dict[str, str] = Field(
        default_factory=dict,
        title="Class map",
        description=(
            "model class name → citywatch class, e.g. {automobile: car}; names not listed"
            " keep their own name"
        ),
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        title="Threads",
        description="onnxruntime intra-op threads; empty = onnxruntime's choice (all cores)",
    )
    spin_wait: bool = Field(
        default=False,
        title="Spin-wait",
        description=(
            "let onnxruntime's threads busy-wait between operators: a little faster for a"
            " detector alone on the machine, slower beside a gateway's other threads (camera"
            " loops, clip worker, MQTT); off by default"
        ),
    )
    device: Literal["cpu"] = Field(
        default="cpu", title="Device", description="where inference runs; only 'cpu' for now"
    )
    classical_smoke: SmokeOpinionConfig = Field(
        default_factory=SmokeOpinionConfig,
        title="Classical smoke detector",
        description=(
            "thresholds of the weight-free smoke detector that smoke rules with"
            " confirm_with_classical ask for a second opinion"
        ),
    )

    def floor(self, class_name: str) -> float:
        """The confidence above which a box of ``class_name`` leaves the detector as it is."""
        return self.class_confidence.get(class_name, self.confidence)

    def reach(self, class_name: str) -> float:
        """The lowest confidence at which a box of ``class_name`` can reach the rules: its
        floor, or for smoke the corroborated floor when that is lower."""
        floor = self.floor(class_name)
        if class_name == SMOKE_CLASS and self.corroborated_smoke is not None:
            return min(floor, self.corroborated_smoke)
        return floor

    def reports(self, class_name: str) -> bool:
        """Whether boxes of ``class_name`` may leave this detector (its ``classes`` filter;
        the classical detector reports smoke only)."""
        if self.backend == "classical":
            return class_name == SMOKE_CLASS
        return self.classes is None or class_name in self.classes

    def model_floors(self) -> dict[str, float]:
        """The per-class floors the model runs with (corroboration filters smoke after)."""
        floors = dict(self.class_confidence)
        if self.corroborated_smoke is not None:
            floors[SMOKE_CLASS] = self.reach(SMOKE_CLASS)
        return floors

    @property
    def model_floor(self) -> float:
        """The lowest floor of any class: what the model itself is run with."""
        return min([self.confidence, *self.model_floors().values()])

    @model_validator(mode="after")
    def _corroboration_is_below_the_smoke_floor(self) -> DetectorConfig:
        weak, floor = self.corroborated_smoke, self.floor(SMOKE_CLASS)
        if weak is not None and weak >= floor:
            raise ValueError(
                f"corroborated_smoke {weak} must be below smoke's floor {floor}"
                " (class_confidence.smoke, else confidence): only boxes in between are"
                " corroborated"
            )
        return self

    @model_validator(mode="after")
    def _weights_suit_the_backend(self) -> DetectorConfig:
        verify_weights_suit_the_backend(self)
        return self

    @field_validator("class_map")
    @classmethod
    def _class_names_not_empty(cls, value: dict[str, str]) -> dict[str, str]:
        blank = [key for key, target in value.items() if not key.strip() or not target.strip()]
        if blank:
            raise ValueError(f"class_map entries need a model name and a class name: {blank}")
        return value

    def weights_path(self, models_dir: Path) -> Path:
        """Where the weights are: the configured path, or the bundled model for the backend."""
        if self.backend == "classical":
            raise ValueError("the classical smoke detector has no weights")
        path = self.weights if self.weights is not None else Path(BUNDLED_WEIGHTS[self.backend])
        return path if path.is_absolute() else models_dir / path

    def canonical(self, model_name: str) -> str:
        """The citywatch class a box the model names ``model_name`` reports as."""
        return canonical_class(model_name, self.class_map)


def canonical_class(name: str, class_map: dict[str, str]) -> str:
    """``class_map``'s class for ``name``; a name it does not list in lower case, so a
    model's ``Smoke`` or ``Car`` meets rules, floors and the classical confirmation that
    speak of ``smoke`` and ``car``; a name that is already a map target stays as written
    (a detection file written after mapping reads back the same)."""
    if name in class_map:
        return class_map[name]
    if name in class_map.values():
        return name
    return name.lower()


def verify_weights_suit_the_backend(config: DetectorConfig) -> None:
    """The classical detector takes no weights; ultralytics refuses a model *definition*
    (``.yaml``), from which it would silently build an untrained model."""
    weights = config.weights
    if config.backend == "classical":
        if weights is not None or config.class_map:
            raise ValueError(
                "backend 'classical' is the weight-free smoke detector: remove weights and"
                " class_map (its thresholds are classical_smoke)"
            )
        return
    if weights is not None and weights.suffix.lower() in {".yaml", ".yml"}:
        raise ValueError(
            f"weights {str(weights)!r} is a model definition, not trained weights: ultralytics"
            " would build an untrained model from it that detects nothing useful; give the"
            " trained .pt (e.g. runs/detect/train/weights/best.pt) or its .onnx export"
        )
