"""Model families, one module each: model, statistics, fitters, metrics and theory.

A family plugs into the generic engine through :mod:`collapse_sim.protocol` and
registers its metrics in :mod:`collapse_sim.registry`; see the contributor guide
("How to add a family") and :func:`collapse_sim.testing.check_family`.
"""
