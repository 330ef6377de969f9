"""The lexical index: analysed terms in SQL, searched by SQLite FTS5 or PostgreSQL full-text."""
