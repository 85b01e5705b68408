"""Sans-IO codecs: bytes in, typed events out. Never imports trio or socket."""
