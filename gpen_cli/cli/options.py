"""Options shared by `restore`, `batch` and `bench`, declared once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated

import typer

from gpen_cli.config import DetectorName, LandmarkSource, MaskKind
from gpen_cli.defaults import DEFAULT_DETECTOR, DEFAULT_MODEL, MAX_SHORT_EDGE
from gpen_cli.errors import GpenError

PIPELINE = "Pipeline"
SPEED = "Speed"
OUTPUT = "Output"

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="GPEN model name (see `gpen weights list`) or a checkpoint file.",
        rich_help_panel=PIPELINE,
    ),
]
DetectorOption = Annotated[
    DetectorName,
    typer.Option(
        case_sensitive=False,
        help="Face detector: retinaface (= retinaface-resnet50, as the official code), "
        "retinaface-mobile (fast) or yunet.",
        rich_help_panel=PIPELINE,
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        help="auto (CUDA when present), cpu, cuda or cuda:N; other torch devices are refused.",
        rich_help_panel=SPEED,
    ),
]
BatchSizeOption = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        "-b",
        min=1,
        show_default=False,
        help="Faces per GPEN forward pass. Default: 16 on CUDA, 4 on CPU.",
        rich_help_panel=SPEED,
    ),
]
FidelityOption = Annotated[
    float,
    typer.Option(
        "--fidelity-weight",
        "-w",
        min=0.0,
        max=1.0,
        help="1.0 = fully restored face, 0.0 = the original; in between blends them.",
        rich_help_panel=PIPELINE,
    ),
]
AlignedOption = Annotated[
    bool,
    typer.Option(
        "--aligned",
        help="Inputs are already aligned face crops: no detection, resized to the "
        "model size, restored and saved at that size.",
        rich_help_panel=PIPELINE,
    ),
]
ShortEdgeOption = Annotated[
    int | None,
    typer.Option(
        "--short-edge",
        min=16,
        max=MAX_SHORT_EDGE,
        show_default=False,
        help="Work at this short-side length (Lanczos); the output keeps the input's size "
        "unless --keep-resized.",
        rich_help_panel=PIPELINE,
    ),
]
UpscaleOption = Annotated[
    int,
    typer.Option(
        "--upscale",
        help="Upscale the whole photo 2 or 4 times with --bg-upsampler and restore the faces "
        "at that size (GPEN's --use_sr --sr_scale).",
        rich_help_panel=PIPELINE,
    ),
]
BgUpsamplerOption = Annotated[
    str | None,
    typer.Option(
        "--bg-upsampler",
        show_default=False,
        help="With --upscale: realesrnet_x2/x4 (default, GPEN's), realesrgan_x2plus/x4plus, "
        "any SR checkpoint file spandrel reads, or none (Lanczos).",
        rich_help_panel=PIPELINE,
    ),
]
TileOption = Annotated[
    int | None,
    typer.Option(
        "--tile",
        min=16,
        show_default=False,
        help="Run the upsampler on tiles of this size (input px); default: whole when the "
        "photo fits the memory budget, else tiles.",
        rich_help_panel=SPEED,
    ),
]
KeepResizedOption = Annotated[
    bool,
    typer.Option(
        "--keep-resized",
        help="With --short-edge: save at the working size.",
        rich_help_panel=OUTPUT,
    ),
]
ClaheOption = Annotated[
    bool,
    typer.Option(
        "--clahe",
        help="Equalise contrast (CLAHE on L of Lab) of each face crop before GPEN.",
        rich_help_panel=PIPELINE,
    ),
]
CenterOption = Annotated[
    bool,
    typer.Option(
        "--only-center-face",
        help="Restore only the face nearest the image centre.",
        rich_help_panel=PIPELINE,
    ),
]
MinFaceOption = Annotated[
    float,
    typer.Option(
        "--min-face-size",
        min=0,
        help="Ignore faces whose box is smaller than this (px).",
        rich_help_panel=PIPELINE,
    ),
]
ThresholdOption = Annotated[
    float,
    typer.Option(
        "--score-threshold",
        min=0.0,
        max=1.0,
        help="Detector confidence needed to keep a face.",
        rich_help_panel=PIPELINE,
    ),
]
LandmarksOption = Annotated[
    LandmarkSource,
    typer.Option(
        "--landmarks",
        case_sensitive=False,
        help="detector: the detector's 5 points; fan: face-alignment's 68 points reduced to 5.",
        rich_help_panel=PIPELINE,
    ),
]
MaskOption = Annotated[
    MaskKind,
    typer.Option(
        "--mask",
        case_sensitive=False,
        help="Paste mask: parsing (the official face-parsing mask) or rect (the official "
        "feathered square: much faster, also pastes GPEN's hair and background).",
        rich_help_panel=PIPELINE,
    ),
]
DropNestedOption = Annotated[
    bool,
    typer.Option(
        "--drop-nested",
        help="Drop a face box lying mostly inside a better one (not in the official "
        "pipeline, which restores both).",
        rich_help_panel=PIPELINE,
    ),
]
HalfOption = Annotated[
    bool,
    typer.Option(
        "--half",
        help="FP16 on CUDA, BF16 on a CPU with native BF16: faster, changes pixels "
        "(about 40 dB PSNR against the default FP32).",
        rich_help_panel=SPEED,
    ),
]
CompileOption = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the generator (falls back with a warning).",
        rich_help_panel=SPEED,
    ),
]
ExactOption = Annotated[
    bool,
    typer.Option(
        "--exact",
        help="Use the official (slower) formulation of every layer.",
        rich_help_panel=SPEED,
    ),
]
ExtOption = Annotated[
    str,
    typer.Option(
        "--ext", help="Output format: same (as the input), png or jpg.", rich_help_panel=OUTPUT
    ),
]
SaveFacesOption = Annotated[
    bool,
    typer.Option(
        "--save-faces",
        help="Also write each aligned input crop and restored crop.",
        rich_help_panel=OUTPUT,
    ),
]
CompareOption = Annotated[
    bool,
    typer.Option(
        "--compare",
        help="Also write the input and the result side by side.",
        rich_help_panel=OUTPUT,
    ),
]
ReportOption = Annotated[
    Path | None,
    typer.Option(
        "--report",
        show_default=False,
        help="Write a JSON report of every input here.",
        rich_help_panel=OUTPUT,
    ),
]
OverwriteOption = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace outputs that already exist.", rich_help_panel=OUTPUT),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]


EXT_CHOICES = ("same", "png", "jpg")


def check_ext(ext: str) -> None:
    if ext not in EXT_CHOICES:
        raise GpenError(f"--ext must be one of {', '.join(EXT_CHOICES)}, got {ext!r}")


def check_device(device: str) -> None:
    """Refuse an unsupported --device before any model is loaded."""
    from gpen_cli.devices import check_device as check

    check(device)


@dataclass(frozen=True)
class RestoreSettings:
    """The pipeline options as the user gave them; frozen, so an engine's workers can
    receive it pickled and keep one restorer per distinct settings."""

    model: str = DEFAULT_MODEL
    detector: DetectorName | str = DEFAULT_DETECTOR
    weights_dir: Path | None = None
    device: str = "auto"
    batch_size: int | None = None
    fidelity_weight: float = 1.0
    aligned: bool = False
    short_edge: int | None = None
    keep_resized: bool = False
    clahe: bool = False
    only_center_face: bool = False
    min_face_size: float = 0.0
    score_threshold: float = 0.9
    drop_nested: bool = False
    landmarks: LandmarkSource = LandmarkSource.DETECTOR
    mask: MaskKind = MaskKind.PARSING
    half: bool = False
    compile_model: bool = False
    exact: bool = False
    upscale: int = 1
    bg_upsampler: str | None = None
    tile: int | None = None

    @classmethod
    def from_arguments(cls, arguments: dict) -> RestoreSettings:
        """The settings among a command's arguments (pass `locals()`); absent ones default."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls) if f.name in arguments})

    def build_restorer(self, on_tile=None):
        """The FaceRestorer these options describe (loads models: seconds).

        `on_tile(done, total)` is told the upsampler's progress over its tiles.
        """
        from gpen_cli.restorer import FaceRestorer

        return FaceRestorer(
            model=self.model,
            detector=self.detector,
            weights_dir=self.weights_dir,
            device=self.device,
            batch_size=self.batch_size,
            fidelity_weight=self.fidelity_weight,
            clahe=self.clahe,
            short_edge=self.short_edge,
            keep_resized=self.keep_resized,
            only_center_face=self.only_center_face,
            min_face_size=self.min_face_size,
            score_threshold=self.score_threshold,
            drop_nested=self.drop_nested,
            landmarks=self.landmarks,
            mask=self.mask,
            aligned=self.aligned,
            half=self.half,
            compile_model=self.compile_model,
            exact=self.exact,
            upscale=self.upscale,
            bg_upsampler=self.bg_upsampler,
            tile=self.tile,
            on_tile=on_tile,
        )
