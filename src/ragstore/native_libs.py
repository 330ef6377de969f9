"""The system's C++ runtime, made global before any extension module that carries its own copy is loaded.

usearch's compiled module links libstdc++ statically and exports its symbols. Once it was loaded, importing
onnxruntime (the int8 embedding engine, embeddings/e5_int8.py) crashed the process with SIGSEGV inside
libstdc++'s `std::codecvt`, whatever onnxruntime's version (1.28 and 1.32 tried); onnxruntime first, or the
system libstdc++ loaded with RTLD_GLOBAL first, and both load and run. The package does the latter on import
(about a millisecond), so the order in which a process meets the two no longer matters.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

__all__ = ["share_cxx_runtime"]


def share_cxx_runtime() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):  # a system without it has no C++ extension to protect either
            ctypes.CDLL("libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)
