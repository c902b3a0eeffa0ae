"""Baselines run on the same manifest, subjects and scorer as Brain3D (paper Table I).

`medgemma2d`: the paper's 2D-slice MedGemma baseline (axial FLAIR slices as images of the Gemma-3 multimodal
model); `slices` picks and orients those slices; `comparison` puts it beside a Brain3D evaluation with paired
statistics and prefill token counts.
"""
