"""Where the shared sample messages live: a byte-identical copy of ../shared/samples (see
tests/samples/SOURCES.md for origins and licences), kept in the repository so a clone alone
runs the tests."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples"
