"""Hand-built PDFs for the loader tests: a PDF from numbered object bodies, so a test can make files no PDF
writer would (a flate bomb, a page tree of millions of pages)."""

from __future__ import annotations


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF from numbered object bodies (1-based), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
