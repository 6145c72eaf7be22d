"""The official detector's faces, replayed: what the real RetinaFace MobileNet-0.25 finds in the
test photos (tests/data/official/detections.json), for the tests that need faces found but not
the detector itself. Imported by tests/conftest.py, and by tests/replay_site/sitecustomize.py in
the processes a test starts (`gpen` run as a command, Ray's workers)."""

from __future__ import annotations

from pathlib import Path

import seeded

# Test photos (tests/data/photos) by what they stand for: one large face, several small ones.
PHOTOS = {"portrait": "astronaut_320.png", "group": "solvay_crop.png"}


def photo_path(kind: str) -> Path:
    return seeded.DATA / "photos" / PHOTOS[kind]


class ReplayDetector:
    """Returns the official detector's stored faces (tests/data/official/detections.json) for
    the test photos, recognised by their size (scaled with a photo enlarged or reduced as a
    whole), and no face for any other picture: what the real RetinaFace MobileNet-0.25 finds in
    them, for the tests that need faces found but not the detector itself."""

    def __init__(self, score_threshold: float | None = None, min_face_size: float = 0) -> None:
        import json

        import cv2

        recorded = json.loads((seeded.OFFICIAL / "detections.json").read_text())
        self.threshold = 0.9 if score_threshold is None else score_threshold
        self.min_face_size = min_face_size
        self.known = {}
        for name in PHOTOS.values():
            stem = Path(name).stem
            picture = cv2.imread(str(seeded.DATA / "photos" / name))
            height, width = picture.shape[:2]
            self.known[(width, height)] = (recorded[stem], picture)

    @staticmethod
    def _looks_like(image_bgr, picture) -> bool:
        """The same picture (JPEG, noise, resized, grey), not another of its size."""
        import cv2
        import numpy as np

        if image_bgr.ndim != 3 or image_bgr.dtype != np.uint8:
            return False
        resized = cv2.resize(picture, image_bgr.shape[1::-1], interpolation=cv2.INTER_AREA)
        grey = [
            cv2.cvtColor(p, cv2.COLOR_BGR2GRAY).astype(np.float32) for p in (resized, image_bgr)
        ]
        return float(np.mean(np.abs(grey[0] - grey[1]))) < 12.0  # a grey copy is the same photo

    def detect(self, image_bgr):
        import numpy as np

        from gpen_cli.stages.faces import Face

        height, width = image_bgr.shape[:2]
        matches = [
            (recorded, width / known_w)
            for (known_w, known_h), (recorded, picture) in self.known.items()
            if abs(height - known_h * width / known_w) < max(1.0, width / known_w)
            and self._looks_like(image_bgr, picture)
        ]
        if not matches:
            return []
        recorded, scale = matches[0]
        faces = []
        for row, points in zip(recorded["boxes"], recorded["landmarks"], strict=True):
            box = np.asarray(row[:4], dtype=np.float64) * scale
            if (
                row[4] < self.threshold
                or min(box[2] - box[0], box[3] - box[1]) < self.min_face_size
            ):
                continue
            landmarks = np.asarray(points, dtype=np.float64).reshape(2, 5).T * scale
            faces.append(Face(box, float(row[4]), landmarks))
        return faces


def load_replay_detector(config, device) -> ReplayDetector:
    """A stand-in for `gpen_cli.pipeline.resolve.load_detector`, honouring the configuration's
    threshold and minimum face size."""
    return ReplayDetector(config.score_threshold, config.min_face_size)
