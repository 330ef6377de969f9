"""Adapters for the frameworks RAG code is written against (issue 21).

Each lives in its own module behind its own extra (`ragstore[langchain]`, `ragstore[llamaindex]`,
`ragstore[mcp]`), so importing `ragstore` never imports a framework; importing an adapter without its extra
raises an ImportError that names the extra to install.
"""
