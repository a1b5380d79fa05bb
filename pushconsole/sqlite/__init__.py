"""Django's SQLite backend with write transactions queued on an OS lock."""
