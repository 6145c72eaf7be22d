"""Make tests/data/official: what the official GPEN code (yangxy/GPEN) makes of seeded weights.

Usage:
    python scripts/make_official_references.py --official PATH_TO_GPEN_CHECKOUT \
        [--detector detection_mobilenet0.25_Final.pth] [--solvay solvay_conference_1927.png]

Run once, by a maintainer, when the references must change (its outputs are committed). It
regenerates the seeded weights with the project's own builders (tests/seeded.py), saves them
as the published checkpoints are (FP16), hands them to the official classes, and writes:

- photos/: the test photos, a crop of the public-domain 1927 Solvay photo and a downscale of
  scikit-image's astronaut;
- per photo, what the official `FaceEnhancement.process` returns (demo defaults: use_sr off,
  alpha 1, RetinaFace MobileNet-0.25 in place of R50, CPU, FP32): `<stem>_GPEN.png`, the first
  face's aligned crop `_face00_in.png`, GPEN's crop `_face00_out.png` and its paste mask in
  crop space `_face00_mask.png` (16-bit), and in `detections.json` the official detector's boxes,
  scores and landmarks; `label_blocks_mask.png`: the official paste mask (512 px, 16-bit) of a
  label map holding every ParseNet label;
- `gpen_tiny_output.npy`: the official generator's FP32 output for the seeded tiny input;
- `gpen_state_dict_layouts.json`: every key and shape of the official GPEN-BFR-256/512/1024/2048;
- `alignment_reference.json`: the official 5-point template per crop size, and the official
  forward and inverse transforms for seeded landmark sets on the astronaut photo;
- `manifest.json`: the hash of every regenerated state dict (checked at test time).

The official code is imported from the checkout given; nothing of it is copied here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import seeded  # noqa: E402

SHARED = REPO.parent / "shared"
LAYOUTS = {
    "GPEN-BFR-256": {"size": 256, "channel_multiplier": 1, "narrow": 0.5},
    "GPEN-BFR-512": {"size": 512, "channel_multiplier": 2, "narrow": 1.0},
    "GPEN-BFR-1024": {"size": 1024, "channel_multiplier": 2, "narrow": 1.0},
    "GPEN-BFR-2048": {"size": 2048, "channel_multiplier": 2, "narrow": 1.0},
}
# Three small faces of the Solvay photo (x0, y0, x1, y1): the small-face filter, overlapping masks.
SOLVAY_CROP = (585, 60, 750, 205)
ASTRONAUT_SIDE = 320  # one face over 100 px: no small-face filter


def make_photos(solvay: Path, folder: Path) -> list[Path]:
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    x0, y0, x1, y1 = SOLVAY_CROP
    crop = cv2.imread(str(solvay), cv2.IMREAD_COLOR)[y0:y1, x0:x1]
    astronaut = skimage.data.astronaut()[:, :, ::-1]
    small = cv2.resize(astronaut, (ASTRONAUT_SIDE, ASTRONAUT_SIDE), interpolation=cv2.INTER_AREA)
    paths = [folder / "solvay_crop.png", folder / "astronaut_320.png"]
    for path, image in zip(paths, (crop, small), strict=True):
        cv2.imwrite(str(path), image)
    return paths


def import_official(checkout: Path) -> None:
    for sub in ("", "face_detect", "face_parse", "face_model", "sr_model", "face_model/op"):
        sys.path.insert(0, str(checkout / sub))
    import face_detect.retinaface_detection as retinaface_detection
    from face_detect.data import cfg_mnet

    retinaface_detection.cfg_re50 = cfg_mnet  # the detector weights at hand: MobileNet-0.25


def official_pipeline(base: Path, photos: list[Path], out: Path) -> None:
    from face_enhancement import FaceEnhancement

    class Args:
        channel_multiplier = seeded.PIPELINE_GPEN["channel_multiplier"]
        narrow = seeded.PIPELINE_GPEN["narrow"]
        key = None
        alpha = 1.0
        sr_model = "realesrnet"
        sr_scale = 2
        tile_size = 0

    size = seeded.PIPELINE_GPEN["size"]
    enhancer = FaceEnhancement(Args, str(base), in_size=size, model="model", use_sr=False,
                               device="cpu")  # fmt: skip
    detections, masks = {}, []
    detect, postprocess = enhancer.facedetector.detect, enhancer.mask_postprocess

    def recording_postprocess(mask, *args, **kwargs):
        masks.append(postprocess(mask, *args, **kwargs))
        return masks[-1]

    enhancer.mask_postprocess = recording_postprocess
    for path in photos:
        recorded = {}

        def recording_detect(image, *args, _recorded=recorded, **kwargs):
            boxes, landmarks = detect(image, *args, **kwargs)
            _recorded.update(
                boxes=np.asarray(boxes).tolist(), landmarks=np.asarray(landmarks).tolist()
            )
            return boxes, landmarks

        enhancer.facedetector.detect = recording_detect
        masks.clear()
        with torch.no_grad():
            photo, crops, restored = enhancer.process(cv2.imread(str(path), cv2.IMREAD_COLOR))
        stem = path.stem
        detections[stem] = recorded
        cv2.imwrite(str(out / f"{stem}_GPEN.png"), photo)
        cv2.imwrite(str(out / f"{stem}_face00_in.png"), crops[0])
        cv2.imwrite(str(out / f"{stem}_face00_out.png"), restored[0])
        mask = cv2.resize(masks[0], (size, size))  # as process() does
        cv2.imwrite(str(out / f"{stem}_face00_mask.png"), np.round(mask * 65535).astype(np.uint16))
        print(f"{stem}: {len(crops)} faces")
    (out / "detections.json").write_text(json.dumps(detections, indent=1) + "\n")
    official_label_mask(enhancer, out)


def official_label_mask(enhancer, out: Path) -> None:
    """What the official colour map and `mask_postprocess` make of `seeded.label_blocks()`."""
    logits = torch.nn.functional.one_hot(torch.from_numpy(seeded.label_blocks()), 19)
    colours = enhancer.faceparser.tenor2mask(logits.permute(2, 0, 1)[None].float())[0]
    mask = enhancer.mask_postprocess(colours / 255.0)
    cv2.imwrite(str(out / "label_blocks_mask.png"), np.round(mask * 65535).astype(np.uint16))


def unused_upsampler(path: Path) -> None:
    """The constructor loads an upsampler even with use_sr off: any RRDBNet will do."""
    from rrdbnet_arch import RRDBNet

    network = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=32, num_block=23, num_grow_ch=32, scale=2)
    torch.save({"params_ema": network.state_dict()}, path)


def official_generator(out: Path) -> None:
    from gpen_model import FullGenerator

    tiny = seeded.TINY_GPEN
    model = FullGenerator(tiny["size"], 512, 8, tiny["channel_multiplier"], narrow=tiny["narrow"])
    model.load_state_dict(seeded.tiny_gpen_state())
    with torch.no_grad():
        output, _ = model.eval()(seeded.tiny_input())
    np.save(out / "gpen_tiny_output.npy", output.numpy().astype(np.float32))
    layouts = {}
    for name, config in LAYOUTS.items():
        with torch.device("meta"):
            network = FullGenerator(config["size"], 512, 8, config["channel_multiplier"],
                                    narrow=config["narrow"])  # fmt: skip
        shapes = {key: list(tensor.shape) for key, tensor in network.state_dict().items()}
        layouts[name] = {"config": config, "state_dict": shapes}
    (out / "gpen_state_dict_layouts.json").write_text(json.dumps(layouts) + "\n")


def official_alignment(photos: list[Path], out: Path) -> None:
    """The official template per size, and its transforms for seeded landmark sets placed on
    the astronaut photo (forward: what `warp_and_crop_face` warps with; inverse: it returns)."""
    import align_faces

    class Recording:  # cv2 as align_faces sees it, keeping the matrix it warps with
        matrix = None

        def __getattr__(self, name):
            return getattr(cv2, name)

        def warpAffine(self, image, matrix, size, flags):  # noqa: N802
            Recording.matrix = np.array(matrix, dtype=np.float64)
            return cv2.warpAffine(image, matrix, size, flags=flags)

    align_faces.cv2 = Recording()
    template = {s: align_faces.get_reference_facial_points((s, s), 0.25, (0, 0), True)
                for s in (256, 512, 1024, 2048)}  # fmt: skip
    rng = np.random.default_rng(20)
    side = cv2.imread(str(photos[1])).shape[0]
    cases = []
    for index in range(12):
        size = (256, 512, 1024, 2048)[index % 4]
        scale = rng.uniform(60, 160) / (template[size][1, 0] - template[size][0, 0]) * 0.5
        angle = rng.uniform(-0.5, 0.5)
        c, s_ = scale * np.cos(angle), scale * np.sin(angle)
        centred = template[size] - size / 2
        points = centred @ np.array([[c, s_], [-s_, c]]) + rng.uniform(0.3, 0.7, 2) * side
        points = points + rng.normal(0, 2.0, points.shape)
        _, inverse = align_faces.warp_and_crop_face(
            np.zeros((8, 8, 3), np.uint8), points, reference_pts=template[size],
            crop_size=(size, size),
        )  # fmt: skip
        cases.append({"size": size, "landmarks": points.tolist(),
                      "forward": Recording.matrix.tolist(),
                      "inverse": np.asarray(inverse, dtype=np.float64).tolist()})  # fmt: skip
    align_faces.cv2 = cv2
    reference = {"reference_points": {str(s): t.tolist() for s, t in template.items()},
                 "cases": cases, "photo": photos[1].name}  # fmt: skip
    (out / "alignment_reference.json").write_text(json.dumps(reference, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of yangxy/GPEN")
    parser.add_argument(
        "--detector", type=Path, default=SHARED / "assets/weights/detection_mobilenet0.25_Final.pth"
    )
    parser.add_argument(
        "--solvay", type=Path, default=SHARED / "assets/images/solvay_conference_1927.png"
    )
    parser.add_argument("--out", type=Path, default=seeded.OFFICIAL)
    args = parser.parse_args()  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    hashes = {name: seeded.state_dict_hash(recipe()) for name, recipe in seeded.RECIPES.items()}
    hashes["tiny_input"] = seeded.tensor_hash(seeded.tiny_input())
    manifest = {"torch": torch.__version__, "hashes": hashes}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    photos = make_photos(args.solvay, seeded.DATA / "photos")
    import_official(args.official.resolve())
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        (base / "weights").mkdir()
        seeded.write("GPEN-BFR-256.pth", base / "weights").rename(base / "weights/model.pth")
        seeded.write("parsing_parsenet.pth", base / "weights").rename(
            base / "weights/ParseNet-latest.pth"
        )
        shutil.copy(args.detector, base / "weights/RetinaFace-R50.pth")
        unused_upsampler(base / "weights/realesrnet_x2.pth")
        official_pipeline(base, photos, args.out)
    official_generator(args.out)
    official_alignment(photos, args.out)


if __name__ == "__main__":
    main()
