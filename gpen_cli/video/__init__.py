"""`gpen video`: restore the faces of a film as a stream, keeping its sound and timing.

    media.py      reading: what a film holds, its frames with the other streams' packets
    writer.py     writing: frames encoded, audio and subtitles remuxed, parts joined
    smoothing.py  landmarks of tracked faces filtered over time, reset at scene cuts
    pipeline.py   the threads and bounded queues from decoded frame to restored frame
    job.py        checks, temporary and partial files, stopping, segments and resuming

`plan_video(...)` checks a job before any model loads; `job.run(restorer)` does it.
"""

from gpen_cli.video.job import VideoJob, VideoOptions, VideoOutcome, partial_path, plan_video
from gpen_cli.video.media import Window

__all__ = ["VideoJob", "VideoOptions", "VideoOutcome", "Window", "partial_path", "plan_video"]
