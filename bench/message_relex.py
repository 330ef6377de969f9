"""Messages' search terms analysed again after a change of analyzer (chat/relex.py), SQLite and PostgreSQL.

    python bench/message_relex.py [--messages 100000] [--database-url URL]

Generates `--messages` messages analysed with bigrams (the generator of `bench/message_search.py`), then opens
the store configured with kiwi, which analyses every message again before it serves, and runs the on-demand
pass (`store.chat.relex`) once more. Beside them, in the same run, the raw limit: kiwi's own `terms_batch`
over the same texts, with no database. Prints a table; asserts only that every message was analysed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import select

from message_search import generate
from ragstore.config import Settings
from ragstore.db.chat_models import Message
from ragstore.service import RagStore
from ragstore.text.analyzers import KiwiAnalyzer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="msgrelex-")))
        url = args.database_url
        if url:
            from pgdb import scratch_database

            url = stack.enter_context(scratch_database(url, prefix="ragstore_msgrelex"))
        settings = Settings(data_dir=data, database_url=url, lexical_analyzer="bigram", auth="off")
        with RagStore.open(settings, recover=False) as store:
            dialect = "SQLite" if store.db.is_sqlite else "PostgreSQL"
            store.chat.bring_terms_current()  # no messages yet: records bigram, which the generator uses
            generate(store, args.messages, max(1, args.messages // 1000))
            with store.db.read() as s:
                texts = list(s.scalars(select(Message.content).order_by(Message.id)))
        kiwi = KiwiAnalyzer()
        kiwi.terms("준비")  # load the model outside the timings
        started = time.perf_counter()
        for i in range(0, len(texts), 1000):
            kiwi.terms_batch(texts[i : i + 1000])
        raw_s = time.perf_counter() - started

        started = time.perf_counter()
        with RagStore.open(settings.model_copy(update={"lexical_analyzer": "kiwi"})) as store:
            open_s = time.perf_counter() - started
            at_open = store.recovery.relexed_messages
            started = time.perf_counter()
            report = store.chat.relex()
            demand_s = time.perf_counter() - started
        assert at_open == report.messages_analysed == len(texts), (at_open, report, len(texts))
    n = len(texts)
    print(f"\n{dialect}, {n:,} messages of 8-24 words, bigram -> {report.analyzer}", file=sys.stderr)
    print("| pass | seconds | messages/s | vs kiwi alone |")
    print("|---|---|---|---|")
    print(f"| kiwi `terms_batch` alone (the raw limit) | {raw_s:.1f} | {n / raw_s:,.0f} | 1.00x |")
    print(f"| open with kiwi (model load included) | {open_s:.1f} | {n / open_s:,.0f} | {raw_s / open_s:.2f}x |")
    print(f"| `chat relex` on demand | {demand_s:.1f} | {n / demand_s:,.0f} | {raw_s / demand_s:.2f}x |")


if __name__ == "__main__":
    main()
