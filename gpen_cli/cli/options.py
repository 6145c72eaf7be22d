"""The command line's options, each declared once.

The pipeline options are `RestoreConfig`'s fields: `pipeline_options` adds them to a command
(defaults from the configuration, help and panels from here) and hands the command one
checked `RestoreConfig`. A value the configuration refuses is reported with its flag.

Ranges are left to that check and said in the help texts: Typer's range types would print
"FLOAT RANGE [0.0<=x<=1.0]" in a column of its own and squeeze the help at 80 columns.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from gpen_cli.cli.choices import registry_option
from gpen_cli.cli.common import WeightsDirOption, say
from gpen_cli.core.config import (
    MAX_SHORT_EDGE,
    MIN_TILE,
    LandmarkSource,
    MaskKind,
    RestoreConfig,
)
from gpen_cli.core.errors import GpenError
from gpen_cli.core.named_networks import check_networks
from gpen_cli.weights.download import MissingFileError, needed_specs

PIPELINE = "Pipeline"
SPEED = "Speed"
OUTPUT = "Output"
CHOICE = "Faces to restore"

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
    str, registry_option("detector", "Face detector", rich_help_panel=PIPELINE)
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
        help="0 to 1: 1.0 = fully restored face, 0.0 = the original; in between blends them.",
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
        show_default=False,
        help=f"Work at this short-side length (16 to {MAX_SHORT_EDGE} px, Lanczos); the "
        "output keeps the input's size unless --keep-resized.",
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
        help="With --upscale: realesrnet_x2 or realesrnet_x4 (GPEN's, the default), "
        "realesrgan_x2plus, realesrgan_x4plus, an SR checkpoint file spandrel reads, "
        "or none (Lanczos).",
        rich_help_panel=PIPELINE,
    ),
]
TileOption = Annotated[
    int | None,
    typer.Option(
        "--tile",
        show_default=False,
        help=f"Run the upsampler on tiles of this size (input px, at least {MIN_TILE}); "
        "default: whole when the photo fits the memory budget, else tiles.",
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
        help="Ignore faces whose box is smaller than this (px).",
        rich_help_panel=PIPELINE,
    ),
]
ThresholdOption = Annotated[
    float | None,
    typer.Option(
        "--score-threshold",
        show_default=False,
        help="Detector confidence (0 to 1) needed to keep a face. Default: 0.9 (RetinaFace, "
        "as the official), 0.7 (YuNet).",
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
        help="Use the official (slower) formulation of every layer (GPEN and ParseNet).",
        rich_help_panel=SPEED,
    ),
]
ScoreOption = Annotated[
    bool,
    typer.Option(
        "--score",
        help="Score each restored face in the report: identity (ArcFace similarity to the "
        "input face, 1 = same) and quality before/after (hyperIQA, 0 to 100).",
        rich_help_panel=OUTPUT,
    ),
]
ReviewBelowOption = Annotated[
    float | None,
    typer.Option(
        "--review-below",
        show_default=False,
        help="Mark a photo for review when a face's identity is below this (e.g. 0.5); "
        "implies --score.",
        rich_help_panel=OUTPUT,
    ),
]
FacesOption = Annotated[
    str | None,
    typer.Option(
        "--faces",
        show_default=False,
        help="Restore only these faces, e.g. 0,2: numbered left to right (ties top to "
        "bottom) as the report lists them. The others stay as they were.",
        rich_help_panel=CHOICE,
    ),
]
LargestOption = Annotated[
    int | None,
    typer.Option(
        "--largest",
        show_default=False,
        help="Restore only the N largest faces.",
        rich_help_panel=CHOICE,
    ),
]
PersonOption = Annotated[
    str | None,
    typer.Option(
        "--person",
        show_default=False,
        help="Restore only faces of the person in this reference photo (ArcFace).",
        rich_help_panel=CHOICE,
    ),
]
MinSimilarityOption = Annotated[
    float,
    typer.Option(
        "--min-similarity",
        help="With --person: the ArcFace similarity (-1 to 1) a face needs to match.",
        rich_help_panel=CHOICE,
    ),
]
RuntimeOption = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="torch, or onnxruntime: GPEN and ParseNet exported to ONNX and run in ONNX "
        "Runtime (FP32; needs the onnx extra).",
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


# Settings `gpen bench` leaves out: which faces are restored, and marking photos for review
# (it times the stages, --score's included). `gpen video` leaves out SCORING: a film has no
# report to put scores in; its faces are chosen frame by frame.
CHOOSING = ("review_below", "faces", "largest", "person", "min_similarity")
SCORING = ("score", "review_below")

# Each field of RestoreConfig as an option (weights_dir is shared with `gpen weights`).
PIPELINE_OPTIONS: dict[str, Any] = {
    "model": ModelOption,
    "weights_dir": WeightsDirOption,
    "detector": DetectorOption,
    "device": DeviceOption,
    "batch_size": BatchSizeOption,
    "fidelity_weight": FidelityOption,
    "aligned": AlignedOption,
    "short_edge": ShortEdgeOption,
    "keep_resized": KeepResizedOption,
    "upscale": UpscaleOption,
    "bg_upsampler": BgUpsamplerOption,
    "tile": TileOption,
    "clahe": ClaheOption,
    "only_center_face": CenterOption,
    "min_face_size": MinFaceOption,
    "score_threshold": ThresholdOption,
    "drop_nested": DropNestedOption,
    "landmarks": LandmarksOption,
    "mask": MaskOption,
    "half": HalfOption,
    "compile_model": CompileOption,
    "exact": ExactOption,
    "score": ScoreOption,
    "review_below": ReviewBelowOption,
    "faces": FacesOption,
    "largest": LargestOption,
    "person": PersonOption,
    "min_similarity": MinSimilarityOption,
    "runtime": RuntimeOption,
}


# Settings the library names otherwise than their command's option does.
_FLAGS_OF = {"cpus": "--workers", "gpus_per_actor": "--gpus-per-worker", "name": "--as NAME"}


def flag(setting: str) -> str:
    """The command-line flag of a setting a message names: a configuration field's
    (`compile_model` → `--compile`), else a command's option of that name (`overwrite` →
    `--overwrite`)."""
    if setting not in PIPELINE_OPTIONS:
        return _FLAGS_OF.get(setting, "--" + setting.replace("_", "-"))
    info = get_args(PIPELINE_OPTIONS[setting])[1]
    # Under Annotated, Typer reads the first name given to typer.Option from its `default`.
    names = [info.default, *(info.param_decls or ())]
    declared = [name for name in names if isinstance(name, str) and name.startswith("--")]
    return declared[0] if declared else "--" + setting.replace("_", "-")


def pipeline_options(*, leave_out: Collection[str] = ()) -> Callable[[Callable], Callable]:
    """Give a command every pipeline option (but `leave_out`) and call it with `config=`.

    The command declares `config: RestoreConfig` instead of two dozen parameters; its help
    lists the options under their panels with `RestoreConfig`'s defaults. A value the
    configuration refuses, or a model that is neither a file nor a registry name, raises
    ConfigError, which `one_line_errors` words with its flag.
    """

    def decorate(command: Callable) -> Callable:
        own = inspect.signature(command, eval_str=True).parameters
        added = [
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=PIPELINE_OPTIONS[f.name],
                default=None if f.default is MISSING else f.default,
            )
            for f in fields(RestoreConfig)
            if f.name not in leave_out
        ]
        kept = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.values()]
        kept = [p for p in kept if p.name != "config"]

        @functools.wraps(command)
        def with_config(**arguments: Any) -> Any:
            context = arguments.pop(_CONTEXT)
            values = {p.name: arguments.pop(p.name) for p in added}
            config = RestoreConfig(**with_user_defaults(values, context))
            check_networks(config)  # the resolver's first check: before any folder is made
            if not arguments.get("quiet"):
                note_unused(config, {name for name in values if _given(context, name)})
            try:
                return command(**arguments, config=config)
            except MissingFileError as exc:  # name every file the command needs, not the first
                from gpen_cli.pipeline.resolve import networks

                needed = needed_specs(networks(config), config.weights_dir)
                raise exc.including(needed).worded(flag) from None

        # Typer hands the click context to a parameter of this type: it says which options
        # were given on the command line.
        context = inspect.Parameter(
            _CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context
        )
        parameters = [context, *kept[:1], *added, *kept[1:]]
        with_config.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        with_config.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_config

    return decorate


_CONTEXT = "gpen_click_context"


def with_user_defaults(values: dict[str, Any], context: typer.Context) -> dict[str, Any]:
    """`values` with each option not given on the command line taken from the user's
    defaults ($GPEN_<KEY>, else the config file: see gpen_cli/core/settings.py). The weights
    folder is left to `weights`, which reads the same places in the same order."""
    from gpen_cli.core import settings

    defaulted = [name for name in values if name != "weights_dir" and not _given(context, name)]
    chosen = settings.effective(defaulted) if defaulted else {}
    return {
        **values,
        **{name: item.value for name, item in chosen.items() if item.source != "built-in"},
    }


def user_default(setting: str) -> Any:
    """The user's default for `setting` (environment or config file), None when built-in:
    for a command that declares that option itself (`gpen bench --model`)."""
    from gpen_cli.core import settings

    chosen = settings.effective([setting])[setting]
    return None if chosen.source == "built-in" else chosen.value


def _given(context: typer.Context, name: str) -> bool:
    """Whether option `name` was typed (or came from click's own sources), not defaulted."""
    return getattr(context.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"


def note_unused(config: RestoreConfig, given: Collection[str]) -> None:
    """One line for a setting given on the command line that does nothing with the others
    (it is not refused: the run is what was asked, less what cannot apply). A default from
    the config file is a preference for when it applies: it is not noted."""
    if "bg_upsampler" in given and config.bg_upsampler is not None and config.upsampler is None:
        say(
            "[yellow]note:[/]",
            f"{flag('bg_upsampler')} {config.bg_upsampler} does nothing without "
            f"{flag('upscale')} 2 or 4: the photos keep their size and no upsampler runs",
        )
