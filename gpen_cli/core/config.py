"""The pipeline's configuration: every choice, its default and its check, declared once.

`RestoreConfig` is what `FaceRestorer`, `gpen restore`, `gpen batch`, `gpen video` and
`gpen bench` all take. It is frozen (an engine's workers receive it pickled and keep one
restorer per distinct configuration) and its values are checked when it is built: ranges,
choices, the device's spelling, a detector name the registry lists. It looks at no file and
no device: whether `model` or `bg_upsampler` names a file or a registry entry, where the
weights are and whether the device exists is the resolver's work (`gpen_cli/pipeline/resolve.py`),
so a configuration can be built, compared and sent to a worker anywhere. Its messages name
the setting (`fidelity_weight`); the command line says the same with its flag.

This module imports neither torch nor OpenCV, so `gpen --help` and `gpen doctor` work even
where the heavy libraries are broken.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

from gpen_cli.core.devices import check_device
from gpen_cli.core.errors import GpenError
from gpen_cli.core.names import match_name, parse_choice
from gpen_cli.weights.registry import names


class MaskKind(str, Enum):
    """How restored faces are cut out for pasting."""

    PARSING = "parsing"  # the official face-parsing mask
    RECT = "rect"  # the official feathered square


def detector_choices() -> list[str]:
    """Every name and alias a detector answers to, from the registry, when asked: an entry
    registered later is a choice too (`retinaface` is the ResNet-50 one, as officially)."""
    return list(names("detector"))


class _DetectorNames(type):
    """Iterating `DetectorName` gives the registry's detector names; an attribute such as
    `DetectorName.RETINAFACE_MOBILE` is the name it spells."""

    def __iter__(cls):
        return iter([cls(name) for name in detector_choices()])

    def __getattr__(cls, attribute: str) -> DetectorName:
        for name in detector_choices():
            if name.upper().replace("-", "_").replace(".", "_") == attribute:
                return cls(name)
        raise AttributeError(f"no detector is named {attribute}")


class DetectorName(str, metaclass=_DetectorNames):
    """A registry detector's name or alias, as the registry spells it; one object per name,
    so `is` compares them as it did enum members."""

    _interned: dict[str, DetectorName] = {}

    def __new__(cls, name: str) -> DetectorName:
        return cls._interned.setdefault(str(name), super().__new__(cls, str(name)))

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"DetectorName({self.value!r})"


class LandmarkSource(str, Enum):
    """Where the 5 alignment points come from."""

    DETECTOR = "detector"  # the detector's own 5 points (the official way)
    FAN = "fan"  # face-alignment's 68 points reduced to 5


DEFAULT_MODEL = "GPEN-BFR-512"
# Longest short side `short_edge` accepts: beyond it no face gains detail, only memory goes.
MAX_SHORT_EDGE = 8192
UPSCALES = (1, 2, 4)
MIN_TILE = 16


class ConfigError(GpenError):
    """A configuration value is refused; `setting` names the field it belongs to."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True)
class RestoreConfig:
    """Everything that decides what a restored photo looks like and how fast it is made.

    The defaults are the official pipeline's (`FaceEnhancement` with the demo's settings);
    every option that changes pixels is off.
    """

    model: str = DEFAULT_MODEL  # a registry name or a checkpoint file
    detector: DetectorName = DetectorName("retinaface-resnet50")
    weights_dir: Path | None = None  # None: $GPEN_WEIGHTS_DIR, the config file, user data
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    batch_size: int | None = None  # faces per forward pass; None: 16 on CUDA, 4 on CPU
    fidelity_weight: float = 1.0  # 1: the restored face, 0: the original
    aligned: bool = False  # inputs are aligned face crops: nothing to detect or paste
    short_edge: int | None = None  # work at this short-side length
    keep_resized: bool = False  # with short_edge: save at the working size
    upscale: int = 1  # 2 or 4: upscale the whole photo, as the official use_sr
    bg_upsampler: str | None = None  # registry name, SR checkpoint or "none"
    tile: int | None = None  # upsampler tile size (input px); None: whole when it fits
    clahe: bool = False  # equalise each face crop's contrast before GPEN
    only_center_face: bool = False
    min_face_size: float = 0.0  # px; smaller boxes are ignored
    score_threshold: float | None = None  # confidence to keep a face; None: the detector's
    drop_nested: bool = False  # drop a box lying mostly inside a better one
    landmarks: LandmarkSource = LandmarkSource.DETECTOR
    mask: MaskKind = MaskKind.PARSING
    half: bool = False  # FP16 on CUDA, BF16 on CPU: faster, changes pixels
    compile_model: bool = False  # torch.compile the generator
    exact: bool = False  # the official (slower) formulation of every layer
    score: bool = False  # identity and quality scores per face (ArcFace, hyperIQA)
    review_below: float | None = None  # identity under this marks a photo for review
    faces: tuple[int, ...] | None = None  # restore only these faces (reading-order indices)
    largest: int | None = None  # restore only the N largest faces
    person: str | None = None  # restore only faces matching the face in this photo
    min_similarity: float = 0.4  # ArcFace cosine similarity a face needs to match `person`
    runtime: str = "torch"  # "onnxruntime": GPEN and ParseNet exported, run in ONNX Runtime

    def __post_init__(self) -> None:
        for name, value in _normalised(self).items():
            object.__setattr__(self, name, value)
        for check in _CHECKS:
            check(self)

    def but(self, **changes: Any) -> RestoreConfig:
        """A copy with `changes`, checked like any other."""
        return replace(self, **changes)

    @property
    def upsampler(self) -> str | None:
        """The background upsampler used: None at `upscale` 1, "lanczos" for "none", else
        `bg_upsampler` (a name or a file), by default GPEN's RealESRNet of that scale, as
        the official `use_sr`."""
        if self.upscale == 1:
            return None
        name = self.bg_upsampler or f"realesrnet_x{self.upscale}"
        return "lanczos" if name.lower() == "none" else name

    @property
    def scoring(self) -> bool:
        """Whether faces are scored: asked for, or needed to mark photos for review."""
        return self.score or self.review_below is not None

    @property
    def choosing(self) -> bool:
        """Whether only some faces are restored."""
        return self.faces is not None or self.largest is not None or self.person is not None

    def describe(self) -> dict[str, str]:
        """Each setting as text, for reports and for telling two configurations apart."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def _normalised(config: RestoreConfig) -> dict[str, Any]:
    """Strings become enum members or registry names (matched ignoring case, with a
    suggestion when wrong)."""
    values: dict[str, Any] = {}
    try:
        values["detector"] = DetectorName(
            match_name(str(config.detector), detector_choices(), "detector")
        )
    except GpenError as exc:
        raise ConfigError("detector", str(exc)) from None
    for name, choices in (
        ("landmarks", LandmarkSource),
        ("mask", MaskKind),
    ):
        try:
            values[name] = parse_choice(choices, getattr(config, name), name.replace("_", " "))
        except GpenError as exc:
            raise ConfigError(name, str(exc)) from None
    if config.weights_dir is not None:
        values["weights_dir"] = Path(config.weights_dir)
    values["model"] = str(config.model)
    if config.bg_upsampler is not None:
        values["bg_upsampler"] = str(config.bg_upsampler)
    if config.faces is not None:
        values["faces"] = _face_indices(config.faces)
    if config.person is not None:
        values["person"] = str(config.person)
    return values


def _face_indices(value: Any) -> tuple[int, ...]:
    """ "0,2" or a sequence of whole numbers → a sorted tuple of distinct indices ≥ 0."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        indices = {int(str(part).strip()) for part in parts if str(part).strip()}
    except ValueError:
        raise ConfigError(
            "faces", f"must be face indices separated by commas (e.g. 0,2), got {value!r}"
        ) from None
    if not indices or min(indices) < 0:
        raise ConfigError("faces", f"must be face indices 0 or more (e.g. 0,2), got {value!r}")
    return tuple(sorted(indices))


def _between(name: str, low: float, high: float = float("inf")):
    """A check that setting `name`, when set, lies in [low, high]."""
    bounds = f"at least {low:g}" if high == float("inf") else f"between {low:g} and {high:g}"

    def check(config: RestoreConfig) -> None:
        value = getattr(config, name)
        if value is not None and not low <= value <= high:
            raise ConfigError(name, f"must be {bounds}, got {value}")

    return check


def _check_upscale(config: RestoreConfig) -> None:
    if config.upscale not in UPSCALES:
        raise ConfigError("upscale", f"must be one of {', '.join(map(str, UPSCALES))}")
    if config.upscale != 1 and config.short_edge is not None:
        raise ConfigError("upscale", "cannot be combined with short_edge: pick one output size")


def _check_device(config: RestoreConfig) -> None:
    try:
        check_device(config.device)
    except GpenError as exc:
        raise ConfigError("device", str(exc)) from None


def _check_choice(config: RestoreConfig) -> None:
    """One way of choosing faces at a time, on photos that have faces to choose from."""
    given = [name for name in ("faces", "largest", "person") if getattr(config, name) is not None]
    if config.only_center_face:
        given.insert(0, "only_center_face")
    if len(given) > 1:
        raise ConfigError(given[1], f"cannot be combined with {given[0]}: choose faces one way")
    if given and config.aligned:
        raise ConfigError(given[0], "does not apply to aligned crops (each is one face)")


RUNTIMES = ("torch", "onnxruntime")


def _check_runtime(config: RestoreConfig) -> None:
    """ONNX Runtime runs the exported FP32 graphs: no torch-only choice applies to them."""
    if config.runtime not in RUNTIMES:
        choices = ", ".join(RUNTIMES)
        raise ConfigError("runtime", f"must be one of {choices}, got {config.runtime!r}")
    if config.runtime == "torch":
        return
    clash = [name for name in ("half", "compile_model", "exact") if getattr(config, name)]
    if clash:
        raise ConfigError(
            "runtime", f"onnxruntime runs the exported FP32 graphs: it excludes {clash[0]}"
        )


_CHECKS = (
    _between("review_below", -1.0, 1.0),
    _between("min_similarity", -1.0, 1.0),
    _between("largest", 1),
    _check_choice,
    _between("fidelity_weight", 0.0, 1.0),
    _between("score_threshold", 0.0, 1.0),
    _between("min_face_size", 0.0),
    _between("short_edge", 16, MAX_SHORT_EDGE),
    _between("batch_size", 1),
    _between("tile", MIN_TILE),
    _check_upscale,
    _check_device,
    _check_runtime,
)
