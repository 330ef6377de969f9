"""Shared by the backup tests: a loaded store, fixed queries, and a way to compare search answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragstore.schemas import BackupSummary, RestoreReport
from ragstore.service import RagStore

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "samples" / "corpus"
QUERIES = [
    "서울의 대중교통 요금",
    "김치를 담그는 방법",
    "vector database index",
    "how do I reset my password",
    "한국어 형태소 분석",
    "backup and restore",
]
COLLECTION = "docs"


def load_corpus(store: RagStore) -> None:
    store.collections.create(COLLECTION)
    report = store.documents.ingest_paths(COLLECTION, [CORPUS])
    assert report.count("failed") == 0, report.summary
    store.index.wait()


def full_backup_then_add(store: RagStore, text: str, title: str) -> BackupSummary:
    """A full backup of the loaded corpus, then one more document indexed after it: what an incremental
    stores, or what a restore of the full backup must not bring back."""
    made = store.backups.create("full")
    assert made is not None
    store.documents.add_text(COLLECTION, text, title=title)
    store.index.wait()
    return made


def answers(store: RagStore) -> list[list[tuple[str, int, float]]]:
    """For every fixed query and mode: the (source, ordinal, score) of each hit, in order."""
    found: list[list[tuple[str, int, float]]] = []
    for query in QUERIES:
        for mode in ("dense", "lexical", "hybrid"):
            hits = store.search(COLLECTION, query, k=8, mode=mode).hits
            found.append([(h.source_uri, h.ordinal, round(h.score, 5)) for h in hits])
    return found


def assert_same_up_to_ties(
    found: list[list[tuple[str, int, float]]], expected: list[list[tuple[str, int, float]]], tolerance: float = 1e-3
) -> None:
    """The same answers from two indexes that score at different precisions (Milvus in f32, the embedded index
    in f16): each position's score within `tolerance`, and where the hits differ, only between hits whose
    scores are that close (two near-equal hits swapped, or a near-tie at the k-th place)."""
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert len(got) == len(want), (got, want)
        for (source, ordinal, score), (_, _, wanted) in zip(got, want, strict=True):
            assert abs(score - wanted) <= tolerance, (got, want)
            if (source, ordinal) not in {(s, o) for s, o, _ in want}:
                assert abs(score - want[-1][2]) <= tolerance, f"{source}#{ordinal} is no near-tie: {got} != {want}"
                continue
            twin = next(x for s, o, x in want if (s, o) == (source, ordinal))
            assert abs(score - twin) <= tolerance, f"{source}#{ordinal} moved too far: {got} != {want}"


def repo_files(repo: Path) -> list[Path]:
    """Every file of a repository that belongs to its backups (not the lock, not temporary parts)."""
    found = sorted(
        p for p in repo.rglob("*") if p.is_file() and p.name != "lock" and p.relative_to(repo).parts[0] != "tmp"
    )
    assert found, f"no backup files under {repo}"
    return found


def flip_byte(path: Path, offset: int | None = None) -> tuple[int, int]:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    original = data[at]
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return at, original


def restore_byte(path: Path, at: int, original: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] = original
    path.write_bytes(bytes(data))


def backup_settings(make_settings: Any, tmp_path: Path, **overrides: Any) -> Any:
    overrides.setdefault("backup_repository", str(tmp_path / "repo"))
    overrides.setdefault("backup_schedule_full", "")
    overrides.setdefault("backup_schedule_incremental", "")
    overrides.setdefault("check_schedule", "")
    overrides.setdefault("restore_root", tmp_path)  # `store.backups.restore_copy` (the API's) stays below it
    return make_settings(**overrides)


def copy_target(database_url: str | None, folder: Path, postgres_admin: Any) -> str:
    """Where a `--to` restore goes: a new folder for SQLite, a new database for PostgreSQL."""
    return str(folder) if database_url is None else str(postgres_admin.new_database_url())


def copied_settings(cfg: Any, result: RestoreReport) -> Any:
    """The settings that open the store a `--to` restore produced."""
    backend = result.vector_backend
    if cfg.is_sqlite:
        return cfg.model_copy(
            update={"data_dir": Path(result.data_dir), "database_url": None, "vector_backend": backend}
        )
    return cfg.model_copy(
        update={"database_url": result.target, "data_dir": Path(result.data_dir), "vector_backend": backend}
    )


def sqlite_settings(tmp_path: Path, **overrides: Any) -> Any:
    """Settings of a SQLite store in `tmp_path` (for tests of what only the SQLite path does)."""
    from ragstore.config import Settings

    overrides.setdefault("data_dir", tmp_path / "data")
    overrides.setdefault("auth", "off")  # as make_settings: feature tests call routes as the local operator
    return backup_settings(lambda **kw: Settings(**kw), tmp_path, **overrides)
