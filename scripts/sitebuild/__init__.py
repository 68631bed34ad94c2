"""Code that builds the documentation site: the technology catalog and the MkDocs hooks."""
