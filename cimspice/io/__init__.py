"""Side effects on files: atomic writes (``files``), event files (``event_files``), result
files (``results``)."""
