"""The report's table and notes, as rows for the terminal (what fits 80 columns) or markdown
(every stage).
"""

from __future__ import annotations

from gpen_cli.bench.run import BenchReport
from gpen_cli.stages.registry import stage_names


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def table_rows(report: BenchReport, detailed: bool = True) -> tuple[list[str], list[list[str]]]:
    """Column names and rows: every stage when `detailed` (markdown), else what fits 80 columns.

    The short form keeps the end-to-end rate, the speed-up ("×"), where the time goes
    (generator and mask, per face) and memory (device memory on CUDA); `--json` and
    `--markdown` carry the rest.
    """
    stages = [s for s in stage_names() if s in report.results[0].stages_s]
    mask = any(r.mask_s_per_face is not None for r in report.results)
    upscaled = any(r.upscale_mp_per_s is not None for r in report.results)
    cuda = report.results[0].cuda_peak_mb is not None
    header = ["configuration", "faces/s", "× faithful" if detailed else "×", "GPEN s/face"]
    header += ["mask s/face"] if mask else []
    header += (["s/face"] + [f"{s} s" for s in stages]) if detailed else []
    header += ["upscale tiles/s", "upscale MP/s"] if upscaled and detailed else []
    header += ["peak RSS MB"] if detailed or not cuda else []
    header += (
        (["CUDA peak MB", "TFLOP/s", "% of peak"] if detailed else ["CUDA MB", "% peak"])
        if cuda
        else []
    )
    rows = []
    for r in report.results:
        fraction = None if r.peak_fraction is None else 100 * r.peak_fraction
        row = [
            r.label,
            _fmt(r.faces_per_s),
            _fmt(r.pipeline_speedup),
            _fmt(r.forward_s_per_face, 3),
        ]
        row += [_fmt(r.mask_s_per_face, 3)] if mask else []
        row += (
            ([_fmt(r.s_per_face, 3)] + [_fmt(r.stages_s[s], 3) for s in stages]) if detailed else []
        )
        row += (
            [_fmt(r.upscale_tiles_per_s), _fmt(r.upscale_mp_per_s, 3)]
            if upscaled and detailed
            else []
        )
        row += [f"{r.peak_rss_mb:.0f}"] if detailed or not cuda else []
        if cuda:
            row += (
                [f"{r.cuda_peak_mb:.0f}"]
                + ([_fmt(r.tflops, 1)] if detailed else [])
                + [_fmt(fraction, 1)]
            )
        rows.append(row)
    return header, rows


def describe(report: BenchReport) -> list[str]:
    """The lines that say what was measured, where, and how."""
    from gpen_cli.core.words import count

    s, m = report.system, report.model
    where = (
        s.get("gpu")
        or f"{s['cpu']}, {s['cpu_count']} logical CPUs, {s['torch_threads']} torch threads"
    )
    first = report.results[0]
    lines = [
        f"model: {m['name']} ({m['config'].get('size')} px), weights: {m['weights']}",
        f"device: {s['device']} — {where}",
        f"versions: python {s['python']}, torch {s['torch']}, numpy {s['numpy']}, "
        f"opencv {s['opencv']}, gpen-cli {s['gpen_cli']}",
        f"workload: {report.mode}, {count(first.faces, 'face')}, "
        f"median of {count(report.repeats, 'run')} after a warm-up",
        "×: faces/s over the first row's, the faithful baseline (official layers, FP32, batch 1)",
    ]
    if report.gflop_per_face:
        cost = f"cost: GPEN {report.gflop_per_face:.1f} GFLOP a face"
        if report.mask_gflop_per_face:
            cost += f", parsing mask {report.mask_gflop_per_face:.1f} GFLOP a face"
        lines.append(cost)
    if not report.rss_is_per_config:
        lines.append("peak RSS is the process's peak so far, not per configuration")
    return lines + [f"note: {note}" for note in report.notes]


def markdown(report: BenchReport) -> str:
    header, rows = table_rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines + [""] + [f"- {line}" for line in describe(report)]) + "\n"
