"""3D LIME for brain3d: why the model wrote what it wrote, as maps on the scan's own grid.

    from brain3d.explain import ExplainConfig, explain_scan, explain_scans
"""

from brain3d.explain.config import ExplainConfig
from brain3d.explain.explanation import Explanation
from brain3d.explain.run import explain_scan, explain_scans

__all__ = ["ExplainConfig", "Explanation", "explain_scan", "explain_scans"]
