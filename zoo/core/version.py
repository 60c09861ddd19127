"""zoo's version, in the lowest layer so that every module can name it (model files, the run
log, `zoo --version`) without importing the `zoo` facade above them."""

__version__ = "0.1.0"
