"""The compiled kernels (numba), one module per idea:

* :mod:`~streamgmm.kernels.records`: the records kernels take and return;
* :mod:`~streamgmm.kernels.codes`: covariance kinds, density modes, statuses;
* :mod:`~streamgmm.kernels.estep`: E-step and sums of a range of rows;
* :mod:`~streamgmm.kernels.operands`: the E-step's operands of a set of parameters;
* :mod:`~streamgmm.kernels.mstep`: centred statistics, merges, M-step, Cholesky factors;
* :mod:`~streamgmm.kernels.online`: the fold of stepwise EM over mini-batches;
* :mod:`~streamgmm.kernels.pairing`, :mod:`~streamgmm.kernels.atomics`: a
  mini-batch on two threads;
* :mod:`~streamgmm.kernels.mathfn`: exponential, log-sum-exp, element-wise helpers;
* :mod:`~streamgmm.kernels.vectorized`: NumPy twins of the row loops, bit for bit;
* :mod:`~streamgmm.kernels.tiers`, :mod:`~streamgmm.kernels.entries`: every
  kernel interpreted until it is hot or found in the disk cache, then compiled.

Rows reach every kernel as one type (float64, C-contiguous, read-only) and
parameters as writeable float64 blocks, and the products' dtype is chosen at
run time (``Plan.float32``), so that each kernel compiles once. Everything
compiled is cached on disk (``cache=True``): ``streamgmm compile``
(:mod:`streamgmm.precompile`) fills the cache ahead.
"""
