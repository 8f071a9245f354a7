"""Run a converted TFLite graph (tools/convert_mediapipe.py) as a torch module.

The converted file holds the model's constants (safetensors, fp16 where the model stores fp16)
and its op list as JSON metadata. We rebuild the network op by op with TFLite's semantics:

- activations are NHWC in TFLite; here 4-D activations are NCHW (torch's layout), constants are
  turned to match once at load, and a RESHAPE / CONCATENATION goes back to NHWC order first so
  it flattens the same elements TFLite flattens;
- SAME padding is TFLite's: total = max((out - 1) * stride + k - in, 0), the smaller half
  before, so stride 2 pads one more row/column at the bottom/right;
- only the ops of the four MediaPipe models we ship are implemented; any other op is an error
  at load time.

The graph runs batched (TFLite's batch-1 reshapes are applied per sample) on any device and
float dtype (`module.to(device, dtype)`).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ..errors import WeightsError

FORMAT = "talkanim-tfgraph"
VERSION = 1

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {
    "NONE": None,
    "RELU": F.relu,
    "RELU6": lambda x: x.clamp(0.0, 6.0),
    "RELU_N1_TO_1": lambda x: x.clamp(-1.0, 1.0),
    "TANH": torch.tanh,
}


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite's SAME padding of one axis: (before, after); the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _nhwc_to_nchw(t: torch.Tensor) -> torch.Tensor:
    """A constant in TFLite's NHWC broadcasting layout, as a 4-D NCHW-broadcastable tensor."""
    while t.dim() < 4:
        t = t.unsqueeze(0)
    return t.permute(0, 3, 1, 2).contiguous()


class TFGraph(torch.nn.Module):
    """A converted TFLite model: `forward(x)` takes NCHW input(s), returns the outputs in TFLite's
    layout (NHWC for 4-D outputs) with the batch size of the input."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                consts = {k: f.get_tensor(k) for k in f.keys()}
            graph = json.loads(meta["graph"])
        except (OSError, KeyError, ValueError) as exc:
            raise WeightsError(f"cannot read converted model {path}: {exc}") from exc
        if graph.get("format") != FORMAT or int(graph.get("version", 0)) > VERSION:
            raise WeightsError(f"{path} is not a {FORMAT} v{VERSION} file")
        self.source = graph.get("source", os.path.basename(str(path)))
        self.inputs = [int(t) for t in graph["inputs"]]
        self.outputs = [int(t) for t in graph["outputs"]]
        self.shapes = {int(k): v["shape"] for k, v in graph["tensors"].items()}
        self._consts = consts
        self._steps: list[tuple[str, Callable, list[int], int]] = []
        for i, op in enumerate(graph["ops"]):
            kind = op["op"]
            build = getattr(self, "_op_" + kind.lower(), None)
            if build is None:
                raise WeightsError(f"{self.source}: op {kind} (op {i}) is not supported by talkanim's graph runner")
            if len(op["outputs"]) != 1:
                raise WeightsError(f"{self.source}: op {kind} with {len(op['outputs'])} outputs is not supported")
            fn, args = build(i, op["inputs"], op["options"], op["outputs"][0])
            self._steps.append((kind, fn, args, op["outputs"][0]))
        del self._consts

    # -- constants -------------------------------------------------------------------------
    def _const(self, t: int) -> torch.Tensor | None:
        return self._consts.get(f"t{t}")

    def _param(self, step: int, name: str, value: torch.Tensor) -> str:
        """Register a float constant as a buffer (follows .to(device, dtype)); returns its name."""
        key = f"s{step}_{name}"
        self.register_buffer(key, value.float().contiguous())
        return key

    def _ints(self, t: int) -> list[int]:
        c = self._const(t)
        if c is None:
            raise WeightsError(f"{self.source}: tensor {t} must be a constant")
        return [int(v) for v in c.flatten().tolist()]

    def _operand(self, step: int, t: int, name: str, out: int):
        """An op input: ('act', id) for an activation, ('buf', name) for a constant, laid out
        to broadcast against NCHW activations when the op's output is 4-D."""
        c = self._const(t)
        if c is None:
            return ("act", t)
        if c.dim() >= 1 and len(self.shapes[out]) == 4:
            c = _nhwc_to_nchw(c)
        return ("buf", self._param(step, name, c))

    # -- op builders: each returns (fn(env) -> tensor, [input ids]) ------------------------
    # The op functions read constants from `self._buffers` (captured as `buf`): Module.to()
    # replaces the tensors inside that same dict, and a dict lookup costs far less per op than
    # Module.__getattr__.
    def _conv_like(self, step, inputs, opts, depthwise: bool):
        buf = self._buffers
        w = self._const(inputs[1])
        if w is None:
            raise WeightsError(f"{self.source}: op {step} has non-constant weights")
        kh, kw = int(w.shape[1]), int(w.shape[2])
        if depthwise:
            # TFLite [1, kh, kw, C*M]: output channel c*M+m reads input channel c, as in
            # torch's grouped convolution with groups=C.
            weight = w.permute(3, 0, 1, 2)
            groups = int(w.shape[3]) // int(opts.get("depth_multiplier", 1) or 1)
        else:
            weight = w.permute(0, 3, 1, 2)  # OHWI -> OIHW
            groups = 1
        wkey = self._param(step, "w", weight)
        bkey = None
        if len(inputs) > 2 and inputs[2] >= 0:
            bkey = self._param(step, "b", self._const(inputs[2]))
        sh, sw = opts["stride"]
        dh, dw = opts.get("dilation", [1, 1])
        act = _ACTIVATIONS[opts.get("activation", "NONE")]
        same = opts["padding"] == "SAME"
        x_id = inputs[0]

        def fn(env):
            x = env[x_id]
            if same:
                ph = same_padding(x.shape[2], kh, sh, dh)
                pw = same_padding(x.shape[3], kw, sw, dw)
                if ph[0] == ph[1] and pw[0] == pw[1]:
                    pad = (ph[0], pw[0])
                else:
                    x, pad = F.pad(x, (pw[0], pw[1], ph[0], ph[1])), (0, 0)
            else:
                pad = (0, 0)
            y = F.conv2d(x, buf[wkey], None if bkey is None else buf[bkey], (sh, sw), pad, (dh, dw), groups)
            return y if act is None else act(y)

        return fn, [x_id]

    def _op_conv_2d(self, step, inputs, opts, out):
        return self._conv_like(step, inputs, opts, depthwise=False)

    def _op_depthwise_conv_2d(self, step, inputs, opts, out):
        return self._conv_like(step, inputs, opts, depthwise=True)

    def _op_convolution2dtransposebias(self, step, inputs, opts, out):
        buf = self._buffers
        # MediaPipe's custom op: a transposed convolution (weights OHWI) plus a bias. The full
        # transposed output is cropped like TFLite's TRANSPOSE_CONV: SAME keeps in * stride
        # rows, starting at the smaller half of the padding.
        w = self._const(inputs[1])
        kh, kw = int(w.shape[1]), int(w.shape[2])
        wkey = self._param(step, "w", w.permute(3, 0, 1, 2))  # OHWI -> (in, out, kh, kw)
        bkey = self._param(step, "b", self._const(inputs[2]))
        sh, sw = opts["stride"]
        same = opts["padding"] == "SAME"
        x_id = inputs[0]

        def fn(env):
            x = env[x_id]
            y = F.conv_transpose2d(x, buf[wkey], buf[bkey], (sh, sw))
            if same:
                oh, ow = x.shape[2] * sh, x.shape[3] * sw
                th, tw = max(kh - sh, 0), max(kw - sw, 0)  # (in - 1) * s + k - out
                y = y[:, :, th // 2:th // 2 + oh, tw // 2:tw // 2 + ow]
            return y

        return fn, [x_id]

    def _op_prelu(self, step, inputs, opts, out):
        buf = self._buffers
        alpha = self._const(inputs[1])
        if alpha is None:
            raise WeightsError(f"{self.source}: PRELU with a non-constant alpha")
        a4 = _nhwc_to_nchw(alpha)
        x_id = inputs[0]
        if a4.shape[0] == 1 and a4.shape[2] == 1 and a4.shape[3] == 1:
            akey = self._param(step, "alpha", a4.flatten())  # one slope per channel: F.prelu
            return (lambda env: F.prelu(env[x_id], buf[akey])), [x_id]
        akey = self._param(step, "alpha", a4)

        def fn(env):
            x = env[x_id]
            return torch.where(x >= 0, x, x * buf[akey])

        return fn, [x_id]

    def _pool(self, step, inputs, opts, kind: str):
        kh, kw = opts["filter"]
        sh, sw = opts["stride"]
        same = opts["padding"] == "SAME"
        act = _ACTIVATIONS[opts.get("activation", "NONE")]
        x_id = inputs[0]

        def fn(env):
            x = env[x_id]
            ph = same_padding(x.shape[2], kh, sh) if same else (0, 0)
            pw = same_padding(x.shape[3], kw, sw) if same else (0, 0)
            padded = any(ph) or any(pw)
            if kind == "max":
                if padded:  # padding never wins a max
                    x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]), value=-math.inf)
                y = F.max_pool2d(x, (kh, kw), (sh, sw))
            elif padded:
                # TFLite averages over the pixels inside the image only
                ones = torch.ones_like(x[:1, :1])
                pad = (pw[0], pw[1], ph[0], ph[1])
                y = F.avg_pool2d(F.pad(x, pad), (kh, kw), (sh, sw)) / F.avg_pool2d(F.pad(ones, pad), (kh, kw), (sh, sw))
            else:
                y = F.avg_pool2d(x, (kh, kw), (sh, sw))
            return y if act is None else act(y)

        return fn, [x_id]

    def _op_max_pool_2d(self, step, inputs, opts, out):
        return self._pool(step, inputs, opts, "max")

    def _op_average_pool_2d(self, step, inputs, opts, out):
        return self._pool(step, inputs, opts, "avg")

    def _binary(self, step, inputs, opts, out, combine):
        buf = self._buffers
        a, b = self._operand(step, inputs[0], "a", out), self._operand(step, inputs[1], "b", out)
        act = _ACTIVATIONS[opts.get("activation", "NONE")]

        def get(env, o):
            return env[o[1]] if o[0] == "act" else buf[o[1]]

        def fn(env):
            y = combine(get(env, a), get(env, b))
            return y if act is None else act(y)

        return fn, [o[1] for o in (a, b) if o[0] == "act"]

    def _op_add(self, step, inputs, opts, out):
        return self._binary(step, inputs, opts, out, torch.add)

    def _op_mul(self, step, inputs, opts, out):
        return self._binary(step, inputs, opts, out, torch.mul)

    def _unary(self, inputs, f):
        x_id = inputs[0]
        return (lambda env: f(env[x_id])), [x_id]

    def _op_relu(self, step, inputs, opts, out):
        return self._unary(inputs, F.relu)

    def _op_hard_swish(self, step, inputs, opts, out):
        return self._unary(inputs, F.hardswish)  # x * relu6(x + 3) / 6, as TFLite

    def _op_logistic(self, step, inputs, opts, out):
        return self._unary(inputs, torch.sigmoid)

    def _op_pad(self, step, inputs, opts, out):
        p = self._ints(inputs[1])  # [[before, after] per NHWC axis]
        if len(p) != 8 or p[0] or p[1]:
            raise WeightsError(f"{self.source}: PAD op {step} must pad a 4-D tensor outside the batch")
        pad = (p[4], p[5], p[2], p[3], p[6], p[7])  # torch: W, then H, then C
        x_id = inputs[0]
        return (lambda env: F.pad(env[x_id], pad)), [x_id]

    def _op_reshape(self, step, inputs, opts, out):
        shape = opts.get("new_shape") or self._ints(inputs[1])
        if shape[0] not in (1, -1):
            raise WeightsError(f"{self.source}: RESHAPE op {step} changes the batch size")
        rest = list(shape[1:])
        x_id = inputs[0]

        def fn(env):
            x = env[x_id]
            if x.dim() == 4:  # flatten in TFLite's NHWC order
                x = x.permute(0, 2, 3, 1)
            return x.reshape([x.shape[0]] + rest)

        return fn, [x_id]

    def _op_concatenation(self, step, inputs, opts, out):
        ndim = len(self.shapes[out])
        axis = opts["axis"] % ndim
        if ndim == 4:
            axis = (0, 2, 3, 1)[axis]  # NHWC axis -> NCHW axis
        act = _ACTIVATIONS[opts.get("activation", "NONE")]
        ids = list(inputs)

        def fn(env):
            y = torch.cat([env[t] for t in ids], dim=axis)
            return y if act is None else act(y)

        return fn, ids

    def _op_resize_bilinear(self, step, inputs, opts, out):
        size = tuple(self._ints(inputs[1]))
        align, half = opts.get("align_corners", False), opts.get("half_pixel_centers", False)
        x_id = inputs[0]
        if align or half:
            # torch's align_corners=False is TFLite's half_pixel_centers (clamped at the edge);
            # align_corners=True is the same in both.
            return (lambda env: F.interpolate(env[x_id], size=size, mode="bilinear", align_corners=align)), [x_id]

        def legacy(env):
            # TFLite without either flag samples output pixel i at input i * in / out.
            x = env[x_id]
            for dim, n_out in ((2, size[0]), (3, size[1])):
                n_in = x.shape[dim]
                pos = torch.arange(n_out, device=x.device, dtype=x.dtype) * (n_in / n_out)
                lo = pos.floor().clamp(max=n_in - 1)
                frac = (pos - lo).view([-1 if d == dim else 1 for d in range(4)])
                lo = lo.long()
                hi = (lo + 1).clamp(max=n_in - 1)
                x = x.index_select(dim, lo) * (1 - frac) + x.index_select(dim, hi) * frac
            return x

        return legacy, [x_id]

    # -- running ---------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return next(self.buffers()).dtype

    def forward(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        """Run the graph on NCHW input(s) of the model's size; outputs in TFLite's layout."""
        if len(xs) != len(self.inputs):
            raise ValueError(f"{self.source} takes {len(self.inputs)} input(s), got {len(xs)}")
        env: dict[int, torch.Tensor] = {}
        dtype = self.dtype
        for t, x in zip(self.inputs, xs):
            env[t] = x.to(dtype)
        for _kind, fn, _args, out in self._steps:
            env[out] = fn(env)
        outs = []
        for t in self.outputs:
            y = env[t]
            outs.append(y.permute(0, 2, 3, 1) if y.dim() == 4 else y)
        return outs


def load_graph(path: str | os.PathLike) -> TFGraph:
    """Load a converted model in eval mode with gradients off (inference only)."""
    graph = TFGraph(path)
    graph.eval()
    graph.requires_grad_(False)
    return graph


def shipped_dir() -> Path:
    """The folder of the converted MediaPipe models inside the installed package."""
    return Path(str(importlib.resources.files("talkanim") / "weights" / "mediapipe"))


def load_shipped(name: str) -> TFGraph:
    """A converted model shipped with talkanim ("face_landmark", "iris_landmark",
    "selfie_segmentation", "face_detection_short_range"), its sha256 checked against
    `manifest.json` first (a damaged install fails here, in one line)."""
    folder = shipped_dir()
    file = f"{name}.safetensors"
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        expected = manifest[file]["sha256"]
        data = (folder / file).read_bytes()
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"shipped model {file} is missing from {folder} ({exc}); reinstall talkanim") from exc
    if hashlib.sha256(data).hexdigest() != expected:
        raise WeightsError(f"shipped model {folder / file} is damaged (sha256 mismatch); reinstall talkanim")
    return load_graph(folder / file)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to `n` for a block, then restored (None: unchanged).

    These networks are small: on a busy 2-core machine a second thread made a frame 4-17x
    slower (threads waiting on each other), so their callers run them on one.
    """
    before = torch.get_num_threads()
    change = n is not None and n != before
    if change:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)
