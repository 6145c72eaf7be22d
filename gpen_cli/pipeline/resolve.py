"""The resolver: from a checked `RestoreConfig` to the files and networks it names.

`RestoreConfig` checks values only and touches nothing; everything that looks at the file
system, the registry's files, the network or the device happens here, when asked:
`check(config)` (is each named model a file or a registry entry of its kind), `networks`
(which network of each kind the configuration runs), `fetch_weights` (download what is
absent, build nothing), `torch_device`, and `resolve(config)`, which does all of it and
builds the networks `FaceRestorer` chains. The engines, bench, video, doctor and the Python
API all come here, so a file is found, fetched and loaded one way.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from gpen_cli.core.config import ConfigError, LandmarkSource, MaskKind, RestoreConfig
from gpen_cli.core.devices import pick_device
from gpen_cli.core.errors import GpenError, WeightsMissingError
from gpen_cli.core.named_networks import check_network, check_networks
from gpen_cli.stages.detect import Detector, FanLandmarks
from gpen_cli.stages.mask import Masker, RectMasker
from gpen_cli.stages.score import FaceScorer, IdentityEmbedder
from gpen_cli.stages.upscale import Upscaler
from gpen_cli.weights.download import ensure_weight, load_model
from gpen_cli.weights.offline import way_forward
from gpen_cli.weights.registry import ModelSpec, get_spec, of_kind
from gpen_cli.weights.store import weight_path
from gpen_cli.weights.verify import check_gpen_structure


def check(config: RestoreConfig) -> None:
    """Refuse a configuration whose model or background upsampler is neither a file nor a
    registry entry of its kind, whose reference photo (`person`) is no file, or whose runtime
    is not installed: what a command asks right after building the configuration, so a typo
    is said before any output folder exists or any model loads."""
    check_networks(config)
    if config.person is not None and not Path(config.person).is_file():
        raise ConfigError("person", f"no such file: {config.person}")
    if config.runtime == "onnxruntime" and not all(
        importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")
    ):
        raise ConfigError(
            "runtime", "onnxruntime needs the onnx extra: pip install 'gpen-cli[onnx]'"
        )


def gpen_model_for_size(size: int) -> str:
    """The registry's GPEN generator for faces of `size` px; GpenError listing them if none."""
    generators = of_kind("gpen")
    for spec in generators:
        if spec.config.get("size") == size:
            return spec.name
    known = ", ".join(spec.name for spec in generators)
    raise GpenError(f"size {size}: no registry GPEN model of that size ({known})")


def generator_file(config: RestoreConfig) -> tuple[ModelSpec | None, Path]:
    """Where `config.model`'s checkpoint is: (None, the file) for a file, else (its registry
    entry, where its file is or would be once fetched). Checks the name; fetches nothing,
    for a caller that has its own answer to an absent file (bench times random weights)."""
    check_network("model", config.model)
    if Path(config.model).is_file():
        return None, Path(config.model)
    spec = get_spec(config.model, "gpen")
    return spec, weight_path(spec.name, config.weights_dir)


def networks(config: RestoreConfig) -> dict[str, str]:
    """The registry name or file of every network `config` runs, by kind: decided here once,
    for the loaders below and for `fetch_weights`."""
    named = {"gpen": config.model, "detector": config.detector.value}
    if config.mask is MaskKind.PARSING:
        named["parsing"] = "parsenet"
    if config.landmarks is not LandmarkSource.DETECTOR:
        named["landmarks"] = "fan-2d"
    if config.upsampler not in (None, "lanczos"):
        named["upsampler"] = config.upsampler
    if config.scoring or config.person is not None:
        named["recognition"] = "arcface"
    if config.scoring:
        named["assessment"] = "hyperiqa"
    return named


def fetch_weights(config: RestoreConfig) -> None:
    """Download every weight file `config` names that is absent, and check the generator's
    tensors (a GPEN layout, finite values), building no model and using no device.

    What a driver that runs no model (`--engine ray`) checks before the job: a missing or
    broken file stops it there in one line, downloaded once rather than by every actor, and
    a head node without the workers' GPU can still start it.
    """
    check(config)
    named = networks(config)
    model = named.pop("gpen")
    for kind, name in named.items():
        if not Path(name).is_file():
            try:
                ensure_weight(get_spec(name, kind).name, config.weights_dir)
            except WeightsMissingError as exc:
                raise way_forward(kind, config, exc) from None
    if Path(model).is_file():
        generator, spec = Path(model), None
    else:
        spec = get_spec(model, "gpen")
        generator = ensure_weight(spec.name, config.weights_dir)
    problem = check_gpen_structure(generator, spec)
    if problem:
        raise ConfigError("model", f"{generator}: {problem}")


def torch_device(config: RestoreConfig) -> Any:
    """The torch device `config.device` names; ConfigError when it is not usable here."""
    try:
        return pick_device(config.device)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError("device", str(exc).strip().splitlines()[0]) from None


@dataclass(frozen=True)
class Networks:
    """What `resolve` built for one configuration: the device and every network it runs
    (None where the configuration runs none of that kind)."""

    device: Any  # torch.device
    generator: nn.Module
    upscaler: Upscaler | None
    detector: Detector | None
    refiner: FanLandmarks | None
    masker: Masker | None
    embedder: IdentityEmbedder | None = None  # ArcFace, when scoring or choosing a person
    scorer: FaceScorer | None = None  # ArcFace and hyperIQA, when scoring


def resolve(
    config: RestoreConfig,
    *,
    generator: nn.Module | None = None,
    detector: Detector | None = None,
) -> Networks:
    """Check `config`'s named files, fetch the absent weights and build its networks on its
    device. `generator` and `detector`, when given, are used instead of the configured ones
    (tests and embedders pass their own). Aligned mode builds no detector, refiner or mask."""
    check(config)
    device = torch_device(config)
    built_generator = generator if generator is not None else load_generator(config, device)
    upscaler = load_upscaler(config, device)
    embedder, scorer = load_scoring(config, device)
    if config.aligned:
        return Networks(device, built_generator, upscaler, None, None, None, embedder, scorer)
    return Networks(
        device,
        built_generator,
        upscaler,
        detector if detector is not None else load_detector(config, device),
        load_refiner(config, device),
        load_masker(config, device),
        embedder,
        scorer,
    )


def load_generator(config: RestoreConfig, device: Any) -> nn.Module:
    """The GPEN generator the configuration names, loaded in the formulation it will run
    in (the fast kernels unless `exact`), so the forward stage needs no second copy."""
    return load_model(
        config.model, "gpen", config.weights_dir, device=device, fast=not config.exact
    )


def load_upscaler(config: RestoreConfig, device: Any) -> Upscaler | None:
    """The background upsampler for `upscale` 2 or 4 (None at 1), `config.upsampler`."""
    name = config.upsampler
    if name is None:
        return None
    if name == "lanczos":
        return Upscaler(None, config.upscale, device=device)
    try:
        network = load_model(name, "upsampler", config.weights_dir)
    except WeightsMissingError as exc:
        raise way_forward("upsampler", config, exc) from None
    except ValueError as exc:
        raise GpenError(str(exc)) from None
    return Upscaler(
        network, config.upscale, device=device, half=config.half, tile=config.tile, name=name
    )


def load_detector(config: RestoreConfig, device: Any) -> Detector:
    """The configured detector, its builder called as `DetectorBuilder` says."""
    try:
        return load_model(
            config.detector.value,
            "detector",
            config.weights_dir,
            device=str(device),
            score_threshold=config.score_threshold,
            min_face_size=config.min_face_size,
            drop_nested=config.drop_nested,
        )
    except WeightsMissingError as exc:
        raise way_forward("detector", config, exc) from None


def load_masker(config: RestoreConfig, device: Any) -> Masker:
    """The official parsing mask (ParseNet), or the official feathered square."""
    name = networks(config).get("parsing")
    if name is None:
        return RectMasker()
    return load_model(
        name,
        "parsing",
        config.weights_dir,
        device=device,
        half=config.half,
        exact=config.exact,
        runtime=config.runtime,
    )


def load_scoring(
    config: RestoreConfig, device: Any
) -> tuple[IdentityEmbedder | None, FaceScorer | None]:
    """ArcFace when scoring or choosing a person, hyperIQA when scoring (None each when
    not: a run without them loads neither)."""
    named = networks(config)
    loaded = {
        kind: load_model(named[kind], kind, config.weights_dir, device=device, half=config.half)
        for kind in ("recognition", "assessment")
        if kind in named
    }
    embedder = loaded.get("recognition")
    if "assessment" not in loaded:
        return embedder, None
    return embedder, FaceScorer(embedder, loaded["assessment"])


def load_refiner(config: RestoreConfig, device: Any) -> FanLandmarks | None:
    """face-alignment's 68-point model for `landmarks=fan`; None keeps the detector's."""
    name = networks(config).get("landmarks")
    if name is None:
        return None
    return load_model(name, "landmarks", config.weights_dir, device=str(device))
