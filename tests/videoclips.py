"""Small films made from the shared photos, for the video tests and benchmarks.

A film is a list of pictures (a face photo, or a faceless gradient), each shown shifted by a
sub-pixel amount with a little noise, with a sine tone as its sound.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

TONE_HZ = 440.0
SAMPLE_RATE = 48000


def face_picture(photo: Path, size: tuple[int, int]) -> np.ndarray:
    """`photo` (BGR) scaled to cover `size` (width, height) and cropped to it, centred."""
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    width, height = size
    scale = max(width / image.shape[1], height / image.shape[0])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def faceless_picture(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    return np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()


def shifted(picture: np.ndarray, dx: float, dy: float, noise: float, seed: int) -> np.ndarray:
    """`picture` moved by (dx, dy) pixels (bilinear) plus Gaussian noise of `noise` levels."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(picture, matrix, picture.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    if noise:
        grain = np.random.default_rng(seed).normal(0, noise, moved.shape)
        moved = np.clip(moved + grain, 0, 255).astype(np.uint8)
    return moved


def make_film(
    path: Path,
    pictures: list[np.ndarray],
    *,
    fps: int = 25,
    codec: str = "ffv1",
    pix_fmt: str | None = None,
    audio: str | None = "flac",
    rotation: int = 0,
    jitter: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> list[np.ndarray]:
    """Write `pictures` as a film (one frame each); returns the frames as encoded (BGR).

    `jitter` moves each frame by a random sub-pixel offset up to that many pixels.
    `rotation` (counter-clockwise degrees) is written as the film's display matrix, the
    frames stored turned the other way, as a phone stores a portrait clip.
    """
    rng = np.random.default_rng(seed)
    height, width = pictures[0].shape[:2]
    stored_size = (height, width) if rotation in (90, 270) else (width, height)
    frames = []
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height = stored_size
        if pix_fmt:
            video.pix_fmt = pix_fmt
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=SAMPLE_RATE)
            sound.layout = "mono"
        for index, picture in enumerate(pictures):
            dx, dy = rng.uniform(-jitter, jitter, 2) if jitter else (0.0, 0.0)
            image = shifted(picture, dx, dy, noise, seed + index)
            frames.append(image)
            turned = np.ascontiguousarray(np.rot90(image, -(rotation // 90)))
            frame = av.VideoFrame.from_ndarray(turned, format="bgr24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = int(len(pictures) / fps * SAMPLE_RATE)
            block = sound.codec_context.frame_size or 1024
            for start in range(0, samples, block):
                t = np.arange(start, min(start + block, samples)) / SAMPLE_RATE
                tone = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return frames


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a film as stored (BGR), no rotation applied."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(audio=0) if p.size]
