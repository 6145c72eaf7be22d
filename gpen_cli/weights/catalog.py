"""The built-in registry entries: the files the tool knows, where they come from, and the
implementation (builder, random initialisation, recogniser) of each, named lazily so that
this table imports no torch. Another model is one more `register(...)`, here or anywhere.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from gpen_cli.weights.registry import ModelKind, ModelSpec, lazy, register

_GPEN_OSS = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models"
# The GPEN README points to ModelScope for the 1024 and 2048 generators (news of 2023-02-15);
# there pytorch_model.pt is the 1024 model and pytorch_model-2048.pt the 2048 one.
_GPEN_MODELSCOPE = (
    "https://www.modelscope.cn/models/iic/cv_gpen_image-portrait-enhancement-hires/resolve/master"
)
_FACEXLIB_RELEASES = "https://github.com/xinntao/facexlib/releases/download"
_REALESRGAN_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_DETECT = "gpen_cli.stages.detect"
_LOADING = "gpen_cli.models.loading"
_SCORE = "gpen_cli.stages.score"
# RRDB blocks of every published RealESRNet / Real-ESRGAN RRDBNet file.
_RRDB_BLOCKS = 23


def _is_onnx(path: Path) -> bool:
    """Whether `path` is named as an ONNX model (YuNet's format)."""
    return Path(path).suffix.lower() == ".onnx"


def _with_layout(
    name: str, filename: str, url: str, kind: ModelKind, builder: str, layout: dict, what: str,
    random_init: partial,
) -> ModelSpec:  # fmt: skip
    """An entry whose published layout (`config`) says what a file of it must hold."""
    return ModelSpec(
        name=name,
        filename=filename,
        url=url,
        kind=kind,
        builder=builder,
        config=layout,
        description=what,
        random_init=random_init,
    )


def _gpen(size: int, url: str, channel_multiplier: int, narrow: float, what: str) -> ModelSpec:
    """A GPEN generator entry; `verify` checks a file against its layout."""
    layout = {"size": size, "channel_multiplier": channel_multiplier, "narrow": narrow}
    name, what = f"GPEN-BFR-{size}", f"GPEN face restoration, {size} px faces{what}."
    random_init = partial(lazy(f"{_LOADING}:random_gpen"), **layout)
    builder = f"{_LOADING}:load_gpen"
    return _with_layout(name, f"{name}.pth", url, "gpen", builder, layout, what, random_init)


def _upsampler(name: str, filename: str, url: str, scale: int, features: int, what: str):
    """An RRDBNet background upsampler entry (spandrel builds it from the tensors)."""
    layout = {"scale": scale, "num_feat": features}
    what = f"{what} background upsampler, x{scale} (RRDBNet, {features} features)."
    random_init = partial(
        lazy("gpen_cli.models.upsampler:random_rrdbnet"), **layout, num_blocks=_RRDB_BLOCKS
    )
    builder = "gpen_cli.models.upsampler:load_sr_net"
    return _with_layout(name, filename, url, "upsampler", builder, layout, what, random_init)


def _retinaface(network: str, **entry) -> ModelSpec:
    """A facexlib RetinaFace entry of backbone `network`."""
    return ModelSpec(
        kind="detector",
        builder=f"{_DETECT}:RetinaFaceDetector",
        build_options={"network": network},
        random_init=partial(lazy(f"{_DETECT}:random_retinaface"), network=network),
        recognises=partial(lazy(f"{_DETECT}:is_retinaface"), network=network),
        **entry,
    )


_BUILTIN = (
    _gpen(256, f"{_GPEN_OSS}/GPEN-BFR-256.pth", 1, 0.5, ": the fastest generator"),
    _gpen(512, f"{_GPEN_OSS}/GPEN-BFR-512.pth", 2, 1.0, ": the authors' reference model"),
    _gpen(1024, f"{_GPEN_MODELSCOPE}/pytorch_model.pt", 2, 1.0, " (published on ModelScope)"),
    _gpen(2048, f"{_GPEN_MODELSCOPE}/pytorch_model-2048.pt", 2, 1.0, " for large selfies"),
    _retinaface(
        "resnet50",
        name="retinaface-resnet50",
        filename="detection_Resnet50_Final.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.1.0/detection_Resnet50_Final.pth",
        aliases=("retinaface",),
        description="RetinaFace with a ResNet-50 backbone (facexlib): accurate face detector.",
        rank=2,
    ),
    _retinaface(
        "mobile0.25",
        name="retinaface-mobile",
        filename="detection_mobilenet0.25_Final.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.1.0/detection_mobilenet0.25_Final.pth",
        size_bytes=1_789_735,
        sha256="38ec7bb3c9cbfe2f40edabc05fab970a6d648747cbc534092be85d5eb9b37ed0",
        description="RetinaFace with a MobileNet-0.25 backbone (facexlib): small, fast detector.",
        rank=0,  # the smallest: what the self-test fetches when no detector is present
    ),
    ModelSpec(
        name="yunet",
        filename="face_detection_yunet.onnx",
        url=(
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2026may.onnx"
        ),
        kind="detector",
        builder=f"{_DETECT}:YuNetDetector",
        size_bytes=229_738,
        sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        description="OpenCV YuNet face detector (ONNX, runs through cv2.FaceDetectorYN).",
        recognises=_is_onnx,
        rank=1,
    ),
    ModelSpec(
        name="parsenet",
        filename="parsing_parsenet.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.2.2/parsing_parsenet.pth",
        kind="parsing",
        builder="gpen_cli.stages.mask:ParsingMasker",
        random_init=lazy("gpen_cli.stages.mask:random_parsenet"),
        recognises=lazy("gpen_cli.stages.mask:is_parsenet"),
        description="ParseNet face parsing (facexlib): masks the face region when pasting back.",
    ),
    ModelSpec(
        name="fan-2d",
        filename="2DFAN4-11f355bf06.pth.tar",
        url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
        kind="landmarks",
        builder=f"{_DETECT}:FanLandmarks",
        random_init=lazy(f"{_DETECT}:random_fan"),
        description="FAN 2D landmarks (face-alignment): 68 points, refines the 5 used to align.",
    ),
    # facexlib publishes no hashes for these: the first download's is recorded beside it.
    ModelSpec(
        name="arcface",
        filename="recognition_arcface_ir_se50.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.1.0/recognition_arcface_ir_se50.pth",
        kind="recognition",
        builder=f"{_SCORE}:IdentityEmbedder",
        random_init=lazy(f"{_SCORE}:random_arcface"),
        description="ArcFace IR-SE50 (facexlib): identity scores and choosing a person.",
    ),
    ModelSpec(
        name="hyperiqa",
        filename="assessment_hyperIQA.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.2.0/assessment_hyperIQA.pth",
        kind="assessment",
        builder=f"{_SCORE}:QualityAssessor",
        random_init=lazy(f"{_SCORE}:random_hyperiqa"),
        description="hyperIQA (facexlib): face quality before and after restoring.",
    ),
    _upsampler("realesrnet_x2", "realesrnet_x2.pth", f"{_GPEN_OSS}/realesrnet_x2.pth", 2, 32,
               "GPEN's RealESRNet"),
    _upsampler("realesrnet_x4", "realesrnet_x4.pth", f"{_GPEN_OSS}/realesrnet_x4.pth", 4, 32,
               "GPEN's RealESRNet"),
    _upsampler("realesrgan_x2plus", "RealESRGAN_x2plus.pth",
               f"{_REALESRGAN_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth", 2, 64, "Real-ESRGAN"),
    _upsampler("realesrgan_x4plus", "RealESRGAN_x4plus.pth",
               f"{_REALESRGAN_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth", 4, 64, "Real-ESRGAN"),
)  # fmt: skip

for _spec in _BUILTIN:
    register(_spec)
