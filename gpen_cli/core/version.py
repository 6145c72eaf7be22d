"""The package's version, alone in a module so that anything (the download's User-Agent, the
bench report, `gpen --version`) can import it without importing the package's API first."""

__version__ = "0.1.0"
