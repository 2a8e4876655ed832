"""asv benchmarks for fastmlp: the pure-NumPy reference and the fast path side by side.

Every workload comes from the registry :mod:`fastmlp.workloads`; see ``common.py``.
"""
