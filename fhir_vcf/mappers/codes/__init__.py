"""Code lists, one module per vocabulary, each entry with its source."""
