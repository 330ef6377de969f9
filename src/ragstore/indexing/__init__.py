"""Keeping the derived indexes (vectors and lexical terms) level with SQL: `store.index`."""
