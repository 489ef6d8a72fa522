"""The kernels Python code calls, each in two tiers (:mod:`streamgmm.kernels.tiers`).

Importing this module imports no numba: a kernel's tiers are loaded at its
first call.
"""

from __future__ import annotations

from .tiers import Tiered

density_operands = Tiered("operands", "density_operands")
n_product_rows = Tiered("operands", "n_product_rows")
range_sums = Tiered("estep", "typed_range_sums")
"""The E-step's sums with float64 products (``Operands.double``)."""
range_sums_float32 = Tiered("estep", "typed_range_sums")
"""The same kernel's version with float32 products (``Operands.single``),
tiered on its own: each version compiles (and is looked up) separately."""
responsibility_sums = Tiered("estep", "responsibility_sums")
log_densities = Tiered("estep", "typed_log_densities")
"""The log-densities with float64 products."""
log_densities_float32 = Tiered("estep", "typed_log_densities")
"""The same kernel's version with float32 products."""
zero_sums = Tiered("estep", "zero_sums")
centred_statistics = Tiered("mstep", "centred_statistics")
merge_blocks = Tiered("mstep", "merge_blocks")
m_step_blocks = Tiered("mstep", "m_step_blocks")
parameters_blocks = Tiered("mstep", "parameters_blocks")
online_steps = Tiered("online", "online_steps")
step_size = Tiered("online", "step_size")
burn_in_mass = Tiered("online", "burn_in_mass")
burn_in_complete = Tiered("online", "burn_in_complete")
gappy_sums = Tiered("gappy", "gappy_sums")
masked_sums = Tiered("masked", "masked_sums")
pattern_table = Tiered("patterns", "pattern_table")

ALL = (density_operands, n_product_rows, range_sums, range_sums_float32, responsibility_sums,
       log_densities, log_densities_float32, zero_sums, centred_statistics, merge_blocks,
       m_step_blocks, parameters_blocks, online_steps, step_size, burn_in_mass,
       burn_in_complete, gappy_sums, masked_sums, pattern_table)
"""Every entry point, for ``streamgmm compile`` and the tests."""
