"""The check for float32 fitted attributes: float32, and equal to a float64
reference up to float32 rounding."""

import numpy as np


def assert_float32_rounding_of(ours, reference, rtol=1e-8, err_msg=""):
    """``ours`` is float32 and differs from ``reference`` by at most one float32
    spacing of the reference plus ``rtol`` times its largest magnitude (the
    float64 computation's own tolerance, which can move a value across a
    rounding boundary)."""
    ours = np.asarray(ours)
    reference = np.asarray(reference, dtype=np.float64)
    assert ours.dtype == np.float32, f"{err_msg}: dtype {ours.dtype}, expected float32"
    allowed = np.spacing(np.abs(reference).astype(np.float32)).astype(np.float64)
    allowed += rtol * np.abs(reference).max()
    gap = np.abs(ours.astype(np.float64) - reference)
    worst = np.unravel_index(np.argmax(gap - allowed), gap.shape) if gap.ndim else ()
    assert np.all(gap <= allowed), (
        f"{err_msg}: differs by {gap[worst]:.3g} at {worst} "
        f"(allowed {allowed[worst]:.3g}; {ours[worst]!r} vs {reference[worst]!r})"
    )
