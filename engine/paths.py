"""Where the project's bundled files live (the repository root, as installed with ``pip -e``)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"
SAMPLES = ROOT / "samples"
DEFAULT_GRAPH = SAMPLES / "lenet5.json"
