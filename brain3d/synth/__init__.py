"""Synthetic phantom cohort: MNI152-based brain MRIs with exact ground truth and TextBraTS-style reports."""
