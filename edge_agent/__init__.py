"""edge-agent: distil defect classifiers on a workstation, run them on the line."""

__version__ = "0.1.0"
