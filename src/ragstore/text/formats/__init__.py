"""One module per file format; `ragstore.text.loaders` picks the one a file's type names."""
