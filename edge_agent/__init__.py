"""edge-agent: distil defect classifiers on a workstation, run them on the line."""

__version__ = "0.1.0"

# The distribution on the package index (the import package is edge_agent, the command edge-agent).
DISTRIBUTION = "edge-inspection-agent"
