"""forward: the differentiable forward simulation chain of invsim.

Kinematics, parton densities, phase-space maps, built-in processes with analytic
matrix elements, neural importance sampling, amplitude surrogates, detector
smearing and event I/O, all on torch tensors on any device.
"""

from forward.xsec import cross_section

__version__ = "0.1.0"

__all__ = ["__version__", "cross_section"]
