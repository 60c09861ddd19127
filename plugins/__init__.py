"""zoo's built-in plugins, installed as the package `zoo_plugins`.

Each sub-package registers through the `zoo` entry-point group in pyproject.toml, exactly as a
third-party plugin does; the core never names them.
"""
