"""The Brain3D model: inflated 3D SigLIP encoder, token compressor, gated projector, soft-prompted Gemma-3.

Import from the submodules (`brain3d.model.brain3d.Brain3D`, `brain3d.model.config.Brain3DConfig`,
`brain3d.twin.tiny.make_tiny_models` for the tiny twin); this package stays import-light so that the CLI starts fast.
"""
