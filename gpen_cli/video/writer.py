"""Writing a film: restored frames encoded, the other streams' packets copied unchanged.

The video encoder gets the input's time base and each frame its input timestamp, so frame
rate, frame count, timing (variable frame rates too) and duration carry over; the display
matrix is copied, so a phone's portrait clip still plays upright. Audio and subtitle packets
are remuxed as they are: the sound is bit-identical to the input's.
"""

from __future__ import annotations

import errno
import logging
from contextlib import suppress
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from gpen_cli.core.errors import GpenError, InputError, OutputError, Phrase
from gpen_cli.video.media import COPIED_TYPES, FilmInfo, Frame, open_film, stored

logger = logging.getLogger(__name__)

FALLBACK_CODEC = "libx264"
DEFAULT_CRF = 18  # x264's "visually lossless"; their own default (23) blurs restored detail
# Encoders whose quality is set by a constant rate factor (--crf).
CRF_ENCODERS = frozenset({"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"})
# A full disk, a full quota, a file size limit.
_NO_SPACE = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def pick_encoder(info: FilmInfo, name: str | None) -> av.Codec:
    """--codec NAME, or by default the input's codec when it can be encoded here (a lossless
    FFV1 film stays FFV1), else H.264."""
    if name is not None:
        try:
            codec = av.Codec(name, "w")
        except (av.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
            codec = None
        if codec is None or codec.type != "video":
            raise GpenError(
                Phrase(f"`codec` {name}: no such video encoder in this PyAV build", "codec")
            )
        return codec
    try:
        codec = av.Codec(info.codec, "w")
        if codec.video_formats:
            return codec
    except (av.FFmpegError, ValueError):
        pass
    return av.Codec(FALLBACK_CODEC, "w")


def _pixel_format(codec: av.Codec, wanted: str) -> str:
    names = [f.name for f in codec.video_formats or ()]
    if not names or wanted in names:
        return wanted
    return "yuv420p" if "yuv420p" in names else names[0]


class FilmWriter:
    """One output file: a video stream encoded from frames, the copied streams remuxed.

    `offset` (seconds) is subtracted from every timestamp: a film restored from --start T
    begins at 0. Errors name `shown` (the output the user asked for), not the temporary path.
    """

    def __init__(
        self,
        path: Path,
        info: FilmInfo,
        *,
        codec: str | None = None,
        crf: int | None = None,
        offset: Fraction = Fraction(0),
        shown: Path | None = None,
        warn: bool = True,
    ) -> None:
        self.info = info
        self.offset = offset
        self.shown = Path(shown or path)
        self.warn = warn  # say what is left out (once: the trial writer does, the run not)
        encoder = pick_encoder(info, codec)
        try:
            self.container = av.open(str(path), "w")
        except (av.FFmpegError, ValueError) as exc:
            raise GpenError(f"{self.shown}: cannot write this kind of file ({exc})") from None
        try:
            self.video = self._add_video(encoder, crf)
            self.copies = self._add_copies()
            self._start(encoder)
        except BaseException:
            with suppress(av.FFmpegError, OSError):
                self.container.close()
            Path(path).unlink(missing_ok=True)
            raise

    def _start(self, encoder: av.Codec) -> None:
        """Open the encoder and write the header: an encoder that refuses these frames (or a
        folder that takes no file) is one line here, before any frame is restored."""
        try:
            self.container.start_encoding()
        except (av.FFmpegError, OSError) as exc:
            if isinstance(exc, OSError):  # the file system's refusal, not the encoder's
                raise self._write_error(exc) from None
            pix_fmt = self.video.pix_fmt
            width, height = self.info.width, self.info.height
            if _subsampled(pix_fmt, width, height) and (width % 2 or height % 2):
                raise GpenError(
                    Phrase(
                        f"{self.shown}: {encoder.name} cannot encode {width}×{height} frames "
                        f"as {pix_fmt}, which needs an even width and height; choose `codec` "
                        "ffv1 (lossless) or crop the film to an even size first",
                        "codec",
                    )
                ) from None
            raise GpenError(
                Phrase(
                    f"{self.shown}: {encoder.name} refuses {width}×{height} {pix_fmt} frames "
                    f"({exc.strerror or exc}); choose another `codec`",
                    "codec",
                )
            ) from None

    def _add_video(self, encoder: av.Codec, crf: int | None) -> av.VideoStream:
        info, container = self.info, self.container
        options = {}
        if encoder.name in CRF_ENCODERS:
            options = {"crf": str(DEFAULT_CRF if crf is None else crf)}
            if encoder.name == "libvpx-vp9":
                options["b"] = "0"  # constant quality, no bitrate cap
        elif crf is not None:
            logger.warning(Phrase("`crf` has no effect with %s", "crf"), encoder.name)
        try:
            # The container says what it cannot hold (a .webm no H.264, a .gif only GIF);
            # some (MPEG-TS) cannot tell beforehand, and take what their format allows.
            stream = container.add_stream(encoder.name, rate=info.rate, options=options)
        except ValueError:
            raise GpenError(
                Phrase(
                    f"{self.shown}: a {self.shown.suffix} file cannot hold "
                    f"{encoder.canonical_name} video; choose another `codec` or output type",
                    "codec",
                )
            ) from None
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = _pixel_format(encoder, info.pix_fmt)
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        if info.display_matrix is not None:
            stream.set_display_matrix(list(info.display_matrix))
        return stream

    def _add_copies(self) -> dict[int, av.stream.Stream]:
        """Output streams for the input's audio and subtitle streams, by input index; the
        container's metadata copied too."""
        copies: dict[int, av.stream.Stream] = {}
        suffix = self.shown.suffix
        with open_film(self.info.path) as source:
            self.container.metadata.update(source.metadata)  # title, date…
            for stream in source.streams:
                if stream.type not in COPIED_TYPES:
                    continue
                name = stream.codec_context.name if stream.codec_context else "unknown"
                try:
                    copies[stream.index] = self.container.add_stream_from_template(stream)
                except ValueError:  # the container cannot hold this codec
                    if stream.type == "audio":
                        raise GpenError(
                            f"the audio ({name}) cannot be copied into a {suffix} file "
                            "unchanged; write a .mkv (it holds any audio)"
                        ) from None
                    if self.warn:
                        logger.warning(
                            "%s subtitles cannot go into a %s file: left out", name, suffix
                        )
        return copies

    def _write_error(self, exc: OSError | av.FFmpegError) -> OutputError:
        return write_error(self.shown, exc)

    def write(self, frame: Frame, image: np.ndarray | None) -> None:
        """Mux the packets that came before `frame`, then encode it: `image` (upright BGR)
        when its faces were restored, None to pass the decoded frame on untouched."""
        for index, packet in frame.packets:
            target = self.copies.get(index)
            if target is None:
                continue
            shift = round(self.offset / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = target
            self.container.mux(packet)
        if image is None:
            out = frame.decoded
            out.pict_type = av.video.frame.PictureType.NONE  # let the encoder pick frame types
        else:
            out = av.VideoFrame.from_ndarray(stored(image, self.info.rotation), format="bgr24")
            out.duration = frame.decoded.duration
        out.pts = frame.pts - round(self.offset / self.info.time_base)
        out.time_base = self.info.time_base
        try:
            self.container.mux(self.video.encode(out))
        except (av.FFmpegError, OSError) as exc:
            raise self._write_error(exc) from None

    def close(self) -> None:
        """Flush the encoder and finish the file (it is playable from here on)."""
        try:
            try:
                self.container.mux(self.video.encode(None))
            finally:
                self.container.close()
        except (av.FFmpegError, OSError) as exc:
            raise self._write_error(exc) from None

    def discard(self) -> None:
        """Close a file that is thrown away (a trial, a failed or empty film): what it could
        not finish (a GIF without frames has no valid end) does not matter then."""
        with suppress(av.FFmpegError, OSError):
            self.container.close()


def write_error(shown: Path, exc: OSError | av.FFmpegError) -> OutputError:
    """One line for a write that failed (a full disk, a removed folder...), naming `shown`."""
    reason = getattr(exc, "strerror", None) or str(exc)
    hint = "; free some space and run again" if getattr(exc, "errno", None) in _NO_SPACE else ""
    return OutputError(f"cannot write {shown}: {reason}{hint}")


def _subsampled(pix_fmt: str, width: int, height: int) -> bool:
    """Whether `pix_fmt` stores colour at a lower resolution than brightness (4:2:0...)."""
    try:
        planes = av.VideoFormat(pix_fmt, width, height).components
    except (ValueError, av.FFmpegError):
        return False
    return any(plane.width != width or plane.height != height for plane in planes)


def join_parts(parts: list[Path], output: Path, shown: Path | None = None) -> None:
    """Concatenate films written by FilmWriter with the same settings, packet by packet:
    their timestamps already follow on from each other, so nothing is re-encoded. Errors
    name `shown` (the output the user asked for)."""
    try:
        _join(parts, output)
    except OSError as exc:  # PyAV's OSError too: a full disk
        raise write_error(shown or output, exc) from None


def _join(parts: list[Path], output: Path) -> None:
    with av.open(str(output), "w") as joined:
        streams: dict[int, av.stream.Stream] = {}
        for part in parts:
            try:
                source = av.open(str(part))
            except av.FFmpegError as exc:
                raise InputError(
                    f"{part}: unreadable segment ({exc}); delete it and rerun"
                ) from None
            with source:
                if not streams:
                    streams = {s.index: joined.add_stream_from_template(s) for s in source.streams}
                for packet in source.demux():
                    if packet.dts is None and packet.size == 0:
                        continue  # flush packet
                    packet.stream = streams[packet.stream.index]
                    joined.mux(packet)
