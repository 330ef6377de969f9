"""`ragstore search` takes exactly the options of the API's SearchRequest, validated by that model."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import typer.main
from typer.testing import CliRunner

from ragstore.cli import app
from ragstore.schemas import SearchRequest

runner = CliRunner()

# The CLI's spelling of a field whose value is JSON on the command line.
CLI_NAME = {"filter": "filter_json", "vector": "vector_json"}


def search_params() -> dict[str, click.Parameter]:
    command = typer.main.get_command(app)
    search = command.commands["search"]  # type: ignore[attr-defined]  # a TyperGroup, not a click.Group
    return {p.name: p for p in search.params if p.name is not None}


def test_every_search_request_field_is_a_cli_option_with_the_fields_description() -> None:
    params = search_params()
    for name, field in SearchRequest.model_fields.items():
        param = params.get(CLI_NAME.get(name, name))
        assert param is not None, f"SearchRequest.{name} has no `ragstore search` option"
        help_text = getattr(param, "help", None) or ""
        assert field.description and help_text.startswith(field.description), (
            f"the help of `ragstore search` for {name} is not SearchRequest.{name}'s description"
        )
    extra = set(params) - {CLI_NAME.get(n, n) for n in SearchRequest.model_fields} - {"collection", "as_json"}
    assert not extra, f"`ragstore search` options that are not SearchRequest fields: {extra}"


@pytest.fixture
def kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Path:
    monkeypatch.setenv("RAGSTORE_DATA_DIR", str(tmp_path / "data"))
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refund.md").write_text("# 환불 규정\n\n구매 후 7일 안에 환불을 요청할 수 있다.\n", encoding="utf-8")
    (docs / "limits.txt").write_text("The business plan allows 600 API requests per minute.\n", encoding="utf-8")
    assert runner.invoke(app, ["ingest", str(docs), "-c", "kb"]).exit_code == 0
    return tmp_path


def test_the_hybrid_scoring_options_reach_the_search(kb: Path) -> None:
    result = runner.invoke(
        app,
        [
            "search",
            "환불 요청",
            "-c",
            "kb",
            "--json",
            "--fusion",
            "rrf",
            "--rrf-k",
            "5",
            "--dense-weight",
            "0",
            "--lexical-weight",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    lexical_only = json.loads(result.output)
    assert lexical_only["mode"] == "hybrid" and lexical_only["hits"][0]["title"] == "환불 규정"
    # dense weight 0: the fused score is the lexical side's alone, 1 / (rrf_k + rank)
    assert lexical_only["hits"][0]["score"] == pytest.approx(1 / (5 + 1), abs=1e-6)  # scores are rounded to 6 places
    # A hybrid lexical hit must match this share of the query's terms: "우주선" is in no document.
    explain = ["search", "환불 요청 우주선", "-c", "kb", "--json", "--explain", "--fusion", "rrf"]
    loose = json.loads(runner.invoke(app, [*explain, "--min-coverage", "0"]).output)
    strict = json.loads(runner.invoke(app, [*explain, "--min-coverage", "1"]).output)
    assert any(h["explain"]["lexical_rank"] for h in loose["hits"])
    assert not any(h["explain"]["lexical_rank"] for h in strict["hits"])


def test_a_search_by_vector_alone(kb: Path) -> None:
    status = runner.invoke(app, ["collections", "list", "--json"])
    dimension = json.loads(status.output)[0]["dimension"]
    result = runner.invoke(app, ["search", "-c", "kb", "--json", "--vector", json.dumps([0.1] * dimension)])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["mode"] == "dense" and len(answer["hits"]) == 2


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--rrf-k", "0"], "--rrf-k"),
        (["--min-coverage", "2"], "--min-coverage"),
        (["--dense-weight", "-1"], "--dense-weight"),
        (["--vector", "[1, 2"], "--vector"),
        (["--vector", '"not a list"'], "--vector"),
        (["-k", "0"], "--k"),
    ],
)
def test_a_bad_option_exits_2_naming_it(kb: Path, args: list[str], named: str) -> None:
    result = runner.invoke(app, ["search", "환불", "-c", "kb", *args])
    assert result.exit_code == 2, result.output
    assert named in result.output
