"""`brain3d demo`: the whole method end to end on the embedded default (synthetic cohort + tiny twin)."""
