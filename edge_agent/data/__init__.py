"""Data sets on disk: layout detection, splits, synthetic surface-defect images. No torch here."""
