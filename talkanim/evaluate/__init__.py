"""Metrics and the reenactment protocol (DESIGN.md, "Quality protocol").

    from talkanim.evaluate import evaluate
    rep = evaluate([Path("clip.mp4")], Path("report"), shots=[1, 8], methods=["copy", "warp"])
    rep.summary(8, "warp")["ssim"]

- `metrics`: pure L1 / PSNR / SSIM / AKD / cosine / Pearson and mouth-eye region masks.
- `identity`: dlib's face descriptor (CSIM) and 68-point fitter, independent of the pipeline.
- `methods`: the pluggable registry (copy, warp, paper, hybrid; `register_method`).
- `protocol`: clip planning, nearest-shot choice, self- and cross-reenactment scoring.
- `report`: report.md, results.json, chart.png, grid.png (atomic writes).
"""

from talkanim.evaluate.methods import Shot, available_methods, make_method, register_method
from talkanim.evaluate.run import EvaluationReport, evaluate

__all__ = ["EvaluationReport", "Shot", "available_methods", "evaluate", "make_method", "register_method"]
