"""Convert MediaPipe's face mesh, iris, selfie segmentation and face detection models to safetensors.

Dev-time only (not part of the installed package). The .tflite files come from the
`mediapipe==0.10.21` wheel (`mediapipe/modules/*/`); this script reads their flatbuffers with
the `tflite` package and writes, per model, one `.safetensors` file that
`talkanim.landmarks.tfgraph` runs in torch:

- every constant tensor under the key `t<tensor index>`, in the dtype the model stores it
  (fp16 weights stay fp16: a DEQUANTIZE op is folded into its constant, the runner casts);
- the op graph as JSON in the metadata key `graph`: for each op its type, options (stride,
  padding, fused activation, ...), input and output tensor indices; the shape and name of every
  tensor; the graph's inputs and outputs; the source file's name and sha256.

Usage (in a venv with `tflite`, `flatbuffers`, `numpy` and `safetensors`):

    python tools/convert_mediapipe.py /path/to/site-packages/mediapipe/modules \
        talkanim/weights/mediapipe

The first argument is the `mediapipe/modules` folder of an installed or unzipped wheel.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np
import tflite
from safetensors.numpy import save_file

# (source path under mediapipe/modules, output name)
MODELS = (
    ("face_landmark/face_landmark.tflite", "face_landmark.safetensors"),
    ("iris_landmark/iris_landmark.tflite", "iris_landmark.safetensors"),
    ("selfie_segmentation/selfie_segmentation.tflite", "selfie_segmentation.safetensors"),
    ("face_detection/face_detection_short_range.tflite", "face_detection_short_range.safetensors"),
)

FORMAT = "talkanim-tfgraph"
VERSION = 1

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_PADDING = {tflite.Padding.SAME: "SAME", tflite.Padding.VALID: "VALID"}
_ACTIVATION = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT8: np.int8,
}
# MediaPipe's custom op stores TfLiteTransposeConvParams raw: {TfLitePadding padding; int
# stride_width; int stride_height;} with kTfLitePaddingSame = 1, kTfLitePaddingValid = 2.
_CUSTOM_PADDING = {1: "SAME", 2: "VALID"}


def _options(op, kind: str) -> dict:
    """The options of one op as plain JSON values (only the fields the runner needs)."""
    table = op.BuiltinOptions()

    def load(cls):
        o = cls()
        o.Init(table.Bytes, table.Pos)
        return o

    if kind == "CONV_2D":
        o = load(tflite.Conv2DOptions)
        return {"padding": _PADDING[o.Padding()], "stride": [o.StrideH(), o.StrideW()],
                "dilation": [o.DilationHFactor(), o.DilationWFactor()],
                "activation": _ACTIVATION[o.FusedActivationFunction()]}
    if kind == "DEPTHWISE_CONV_2D":
        o = load(tflite.DepthwiseConv2DOptions)
        return {"padding": _PADDING[o.Padding()], "stride": [o.StrideH(), o.StrideW()],
                "dilation": [o.DilationHFactor(), o.DilationWFactor()],
                "depth_multiplier": o.DepthMultiplier(),
                "activation": _ACTIVATION[o.FusedActivationFunction()]}
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        o = load(tflite.Pool2DOptions)
        return {"padding": _PADDING[o.Padding()], "stride": [o.StrideH(), o.StrideW()],
                "filter": [o.FilterHeight(), o.FilterWidth()],
                "activation": _ACTIVATION[o.FusedActivationFunction()]}
    if kind in ("ADD", "MUL"):
        if table is None:
            return {"activation": "NONE"}
        o = load(tflite.AddOptions if kind == "ADD" else tflite.MulOptions)
        return {"activation": _ACTIVATION[o.FusedActivationFunction()]}
    if kind == "CONCATENATION":
        o = load(tflite.ConcatenationOptions)
        return {"axis": o.Axis(), "activation": _ACTIVATION[o.FusedActivationFunction()]}
    if kind == "RESHAPE":
        if table is None:
            return {}
        o = load(tflite.ReshapeOptions)
        return {"new_shape": [int(v) for v in o.NewShapeAsNumpy()]} if o.NewShapeLength() else {}
    if kind == "RESIZE_BILINEAR":
        o = load(tflite.ResizeBilinearOptions)
        return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
    if kind == "Convolution2DTransposeBias":
        raw = bytes(op.CustomOptionsAsNumpy().tobytes())
        padding, stride_w, stride_h = struct.unpack("<3i", raw[:12])
        return {"padding": _CUSTOM_PADDING[padding], "stride": [stride_h, stride_w]}
    return {}


def _op_kind(model, op) -> str:
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == tflite.BuiltinOperator.CUSTOM:
        return code.CustomCode().decode()
    return _OP_NAMES[builtin]


def _constant(model, tensor) -> np.ndarray | None:
    buf = model.Buffers(tensor.Buffer())
    if buf is None or buf.DataLength() == 0:
        return None
    dtype = _DTYPES[tensor.Type()]
    shape = [int(v) for v in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
    return np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape).copy()


def convert(src: Path, dst: Path) -> dict:
    """Convert one .tflite file; returns the graph description that went into the metadata."""
    data = src.read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise SystemExit(f"{src}: expected one subgraph, found {model.SubgraphsLength()}")
    g = model.Subgraphs(0)

    tensors, constants = {}, {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        tensors[i] = {"name": t.Name().decode(),
                      "shape": [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []}
        value = _constant(model, t)
        if value is not None:
            constants[i] = value

    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        kind = _op_kind(model, op)
        inputs = [int(op.Inputs(j)) for j in range(op.InputsLength())]
        outputs = [int(op.Outputs(j)) for j in range(op.OutputsLength())]
        if kind == "DEQUANTIZE":
            # fp16 weight -> fp32 at load: keep the fp16 constant under the op's output index
            # (the runner casts every float constant to its compute dtype anyway).
            if inputs[0] not in constants:
                raise SystemExit(f"{src}: DEQUANTIZE of a non-constant tensor is not supported")
            constants[outputs[0]] = constants.pop(inputs[0])
            continue
        ops.append({"op": kind, "inputs": inputs, "outputs": outputs, "options": _options(op, kind)})

    used = {t for op in ops for t in op["inputs"] + op["outputs"] if t >= 0}
    graph = {
        "format": FORMAT,
        "version": VERSION,
        "source": src.name,
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "inputs": [int(g.Inputs(j)) for j in range(g.InputsLength())],
        "outputs": [int(g.Outputs(j)) for j in range(g.OutputsLength())],
        "tensors": {str(t): tensors[t] for t in sorted(used)},
        "ops": ops,
    }
    arrays = {f"t{t}": np.ascontiguousarray(v) for t, v in sorted(constants.items()) if t in used}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(dst), metadata={"graph": json.dumps(graph, separators=(",", ":"))})
    return graph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", type=Path, help="the mediapipe/modules folder of mediapipe 0.10.21")
    parser.add_argument("out", type=Path, help="output folder (talkanim/weights/mediapipe)")
    args = parser.parse_args(argv)
    manifest = {}
    for rel, name in MODELS:
        src, dst = args.modules / rel, args.out / name
        graph = convert(src, dst)
        digest = hashlib.sha256(dst.read_bytes()).hexdigest()
        manifest[name] = {"sha256": digest, "source": f"mediapipe/modules/{rel}", "source_sha256": graph["source_sha256"]}
        kinds = sorted({op["op"] for op in graph["ops"]})
        print(f"{rel}: sha256 {graph['source_sha256']}")
        print(f"  -> {dst} ({dst.stat().st_size} bytes, sha256 {digest})")
        print(f"  {len(graph['ops'])} ops: {', '.join(kinds)}")
    # the runtime refuses a converted file whose sha256 differs from this manifest
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
