"""Where the bundled files live: package data of the installed ``layerloom`` (a wheel's
site-packages, or the checkout for ``pip install -e``), found through ``importlib.resources`` so the
code never guesses the repository root."""
from importlib.resources import files
from pathlib import Path


def _package_dir(package: str) -> Path:
    """A real folder: the app installs unzipped (a wheel in site-packages, or editable)."""
    return Path(str(files(package)))


RESOURCES = _package_dir("layerloom.resources")
SAMPLES = _package_dir("layerloom.samples")
DEFAULT_GRAPH = SAMPLES / "lenet5.json"
