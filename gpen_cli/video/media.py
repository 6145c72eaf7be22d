"""Reading a film: what it holds, and its frames as a stream with the other streams' packets.

Frames are decoded one at a time and handed on with the audio and subtitle packets demuxed
before them, so the writer can interleave them again without buffering either side: memory
does not grow with the length of the film.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from gpen_cli.core.errors import InputError

# Streams copied packet by packet; data streams (timecode tracks) and attachments are not.
COPIED_TYPES = ("audio", "subtitle")
# How far past the end of a --duration window other streams are still read, in seconds:
# their packets are interleaved with video only approximately.
_END_MARGIN = Fraction(1)


@dataclass(frozen=True)
class Window:
    """The part of the film to restore, in seconds from its start: [start, end)."""

    start: Fraction = Fraction(0)
    end: Fraction | None = None

    def holds(self, time: Fraction) -> bool:
        return time >= self.start and (self.end is None or time < self.end)


@dataclass(frozen=True)
class FilmInfo:
    """What the writer and the progress bar need to know about an input film."""

    path: Path
    width: int  # as stored (before rotation)
    height: int
    codec: str
    pix_fmt: str
    rate: Fraction | None  # average frame rate
    time_base: Fraction
    frames: int | None  # as the container says, when it says
    duration: Fraction | None  # seconds
    display_matrix: tuple[int, ...] | None  # the 3×3 display matrix, when the film has one
    rotation: int  # counter-clockwise degrees that bring a stored frame upright (0/90/180/270)

    def frames_in(self, window: Window) -> int | None:
        """About how many frames `window` holds (for the progress bar)."""
        if self.duration is None or self.rate is None:
            return self.frames if window == Window() else None
        end = self.duration if window.end is None else min(window.end, self.duration)
        return max(0, math.ceil((end - window.start) * self.rate))


def open_film(path: Path) -> av.container.InputContainer:
    """The film opened for reading, or one line saying why it cannot be."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    try:
        container = av.open(str(path), metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    if is_still_image(container):
        container.close()
        raise StillImageError(f"{path}: a still image, not a film")
    return container


class StillImageError(InputError):
    """A photo was given where a film is needed (a photo is restored as a photo)."""


def is_still_image(container: av.container.InputContainer) -> bool:
    """Whether FFmpeg read the file as one picture: its image demuxers ("image2", "png_pipe",
    "jpeg_pipe"...). An animated GIF or WebP is read by demuxers of their own, as a film."""
    name = container.format.name
    return name == "image2" or name.endswith("_pipe")


def probe(path: Path) -> FilmInfo:
    """Read the film's header and first frame (rotation is carried by frames)."""
    with open_film(path) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        if not context.width or not context.height:
            raise InputError(f"{path}: the video stream has no picture size (damaged header?)")
        first = _first_frame(container, stream, path)
        matrix = _display_matrix(first)
        duration = None
        if stream.duration is not None:
            duration = stream.duration * stream.time_base
        elif container.duration is not None:
            duration = Fraction(container.duration, av.time_base)
        return FilmInfo(
            path=Path(path),
            width=context.width,
            height=context.height,
            codec=context.name,
            pix_fmt=first.format.name,
            rate=stream.average_rate or stream.guessed_rate,
            time_base=stream.time_base,
            frames=stream.frames or None,
            duration=duration,
            display_matrix=matrix,
            rotation=round(first.rotation / 90) * 90 % 360 if matrix else 0,
        )


@dataclass
class Frame:
    """One video frame on its way through the pipeline."""

    index: int  # in the restored window, from 0
    pts: int  # in the input stream's time base
    time: Fraction  # seconds from the start of the film
    decoded: av.VideoFrame  # as decoded, kept to pass a frame without faces on untouched
    image: np.ndarray  # upright BGR uint8, what the restorer sees
    # Other streams' packets to mux first, with their input stream's index (the packet's own
    # stream is gone once the reader closes the input).
    packets: list[tuple[int, av.Packet]] = field(default_factory=list)
    faces: int = 0  # faces restored in it


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """A stored frame turned as a player shows it (rotation: counter-clockwise degrees)."""
    return np.ascontiguousarray(np.rot90(image, rotation // 90)) if rotation else image


def stored(image: np.ndarray, rotation: int) -> np.ndarray:
    """The inverse of `upright`: back to the orientation the encoder stores."""
    return np.ascontiguousarray(np.rot90(image, -(rotation // 90))) if rotation else image


def _decode_in_window(
    packet: av.Packet, time_base: Fraction, window: Window
) -> tuple[list[av.VideoFrame], bool]:
    """The decoded frames of a video packet that lie in `window`, and whether the window's
    end was reached (the frames after it are not decoded)."""
    frames = []
    for decoded in packet.decode():
        if decoded.pts is None:
            continue
        time = decoded.pts * time_base
        if window.end is not None and time >= window.end:
            return frames, True
        if time >= window.start:
            frames.append(decoded)
    return frames, False


def read_frames(info: FilmInfo, window: Window, stop: threading.Event) -> Iterator[Frame]:
    """The frames of `window` in presentation order, each with the packets of the copied
    streams that came before it (those after the last frame ride on the last frame).

    Stops early, cleanly, when `stop` is set. A frame is yielded only once the next one is
    decoded, which is what lets the last frame carry the trailing packets.
    """
    with open_film(info.path) as container:
        video = container.streams.video[0]
        copied = [s for s in container.streams if s.type in COPIED_TYPES]
        if window.start > 0:
            container.seek(int(window.start / video.time_base), stream=video, backward=True)
        pending: Frame | None = None
        packets: list[tuple[int, av.Packet]] = []
        index = 0
        video_done = False
        try:
            for packet in container.demux(video, *copied):
                if stop.is_set():
                    break
                if packet.stream.type != "video":
                    if packet.pts is None:
                        continue  # the demuxer's flush packet
                    time = packet.pts * packet.time_base
                    # Before a window from 0 come the encoder's priming packets: keep them.
                    if window.holds(time) or (window.start == 0 and time < 0):
                        packets.append((packet.stream.index, packet))
                    elif video_done and window.end is not None and time >= window.end + _END_MARGIN:
                        break
                    continue
                if video_done:
                    continue
                in_window, video_done = _decode_in_window(packet, video.time_base, window)
                for decoded in in_window:
                    frame = Frame(
                        index,
                        decoded.pts,
                        decoded.pts * video.time_base,
                        decoded,
                        upright(decoded.to_ndarray(format="bgr24"), info.rotation),
                    )
                    index += 1
                    if pending is not None:
                        yield pending
                    frame.packets, packets = packets, []
                    pending = frame
        except av.FFmpegError as exc:
            where = f"after {float(pending.time):.2f} s" if pending else "at the start"
            raise InputError(
                f"{info.path}: damaged or truncated {where} ({_reason(exc)})"
            ) from None
        if pending is not None:
            pending.packets.extend(packets)
            yield pending


def _first_frame(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise InputError(f"{path}: cannot decode its first frame ({_reason(exc)})") from None
    raise InputError(f"{path}: the video stream holds no frame")


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's 3×3 display matrix, when it has one.

    PyAV cannot list a frame's side data once one item is of a kind newer than its own list
    (EXIF from a JPEG-coded film, for one): then the matrix is rebuilt from the rotation,
    which PyAV reads without listing (a mirrored film then loses its flip, not its frames).
    Iterating the side data gives the items themselves up to PyAV 18.1.0 and their kinds,
    as a mapping's keys, from 18.1.1: both are read.
    """
    try:
        container = frame.side_data
        items = [entry if hasattr(entry, "type") else container[entry] for entry in container]
    except ValueError:
        return _rotation_matrix(frame.rotation) if frame.rotation else None
    for side_data in items:
        if side_data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            values = np.frombuffer(bytes(side_data), dtype=np.int32)
            return tuple(int(v) for v in values) if len(values) == 9 else None
    return None


def _rotation_matrix(degrees: float) -> tuple[int, ...]:
    """The display matrix FFmpeg's av_display_rotation_set writes for `degrees`
    (counter-clockwise): 16.16 fixed point, its last term 2.30."""
    radians = math.radians(degrees)
    cos, sin = math.cos(radians), math.sin(radians)
    fixed = [int(value * (1 << 16)) for value in (cos, -sin, 0.0, sin, cos, 0.0, 0.0, 0.0)]
    return (*fixed, 1 << 30)


def _reason(exc: BaseException) -> str:
    """FFmpeg's words for an error, without the file name it repeats."""
    message = getattr(exc, "strerror", None) or str(exc)
    return str(message).split(": '")[0].strip()
