"""The tiny twin: stand-ins for the downloaded base models (MedSigLIP, MedGemma), not part of the method.

`tiny` writes random-initialised tiny checkpoints of the real classes; `lm_pretrain` and `vision_pretrain`
warm them up (the role of the real models' own pretraining) through the one loop in `warmup`. The twin may
use `brain3d.synth` (phantoms, report text); `brain3d.model` never imports the twin.
"""
