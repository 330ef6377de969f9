"""End to end through RagStore.documents.ingest_paths, on SQLite and PostgreSQL: a CP949 Korean file is
stored, searchable and recorded as cp949; a CSV is stored as its row groups; a .gz and a .docx go in."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from sqlalchemy import select

from ragstore import RagStore
from ragstore.db.models import DocumentChunk

KOREAN = (
    "# 김치 담그는 법\n\n"
    "김치는 배추를 소금에 절인 뒤 고춧가루, 마늘, 젓갈로 만든 양념에 버무려 발효시킨 음식이다. "
    "똠방각하도 겨울이 오기 전에 김장을 한다.\n"
)
ENGLISH = "# Subway transfers\n\nA transfer within thirty minutes on the Seoul subway costs nothing extra.\n"


def test_a_cp949_korean_file_is_stored_searchable_and_recorded_as_cp949(store: RagStore, tmp_path: Path) -> None:
    store.collections.create("kb")
    (tmp_path / "kimchi.md").write_bytes(KOREAN.encode("cp949"))
    (tmp_path / "subway.md").write_text(ENGLISH, encoding="utf-8")
    report = store.documents.ingest_paths("kb", [tmp_path])
    assert [o.status for o in report.outcomes] == ["added", "added"], [o.error for o in report.outcomes]
    by_title = {d.title: d for d in store.documents.list("kb")}
    assert set(by_title) == {"김치 담그는 법", "Subway transfers"}
    assert by_title["김치 담그는 법"].encoding == "cp949"
    assert by_title["Subway transfers"].encoding == "utf-8"
    hit = store.search("kb", "배추 김장 양념", k=1).hits[0]
    assert hit.title == "김치 담그는 법" and "고춧가루" in hit.text


def test_csv_rows_are_stored_as_header_led_groups_and_gz_and_docx_go_in(store: RagStore, tmp_path: Path) -> None:
    import docx

    store.collections.create("kb")
    rows = ["package,description"] + [f"pkg{i},tool number {i} for managing the system" for i in range(120)]
    (tmp_path / "packages.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "NEWS.txt.gz").write_bytes(gzip.compress("변경 사항: 새 버전이 나왔습니다".encode("cp949")))
    document = docx.Document()
    document.core_properties.title = "Release plan"
    document.add_paragraph("The release freezes in January and ships in June.")
    buffer = io.BytesIO()
    document.save(buffer)
    (tmp_path / "plan.docx").write_bytes(buffer.getvalue())
    report = store.documents.ingest_paths("kb", [tmp_path])
    assert sorted(o.status for o in report.outcomes) == ["added"] * 3, [o.error for o in report.outcomes]
    docs = {Path(d.source_uri).name: d for d in store.documents.list("kb")}
    assert (docs["NEWS.txt.gz"].encoding, docs["NEWS.txt.gz"].mime_type) == ("cp949", "text/plain")
    assert docs["plan.docx"].title == "Release plan"
    csv_doc = docs["packages.csv"]
    with store.db.read() as s:
        texts = list(
            s.scalars(
                select(DocumentChunk.text)
                .where(DocumentChunk.document_id == csv_doc.id)
                .order_by(DocumentChunk.ordinal)
            )
        )
    assert len(texts) > 1
    assert all(t.startswith("package | description\n") for t in texts)
    assert sum(len(t.splitlines()) - 1 for t in texts) == 120
    hit = store.search("kb", "pkg77 tool", k=1).hits[0]
    assert hit.document_id == csv_doc.id and "package | description" in hit.text
