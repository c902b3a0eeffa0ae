"""brain3d: radiology reports from native 3D brain MRI (Brain3D / BrainGemma3D method)."""

__version__ = "0.1.0"
