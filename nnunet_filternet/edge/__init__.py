"""The edge gates F = G(sigma) * rho(L * x) and F_L = L * x, their edge loss and lambda schedule, and edge maps.

Modules: ``kernels`` (the Laplacian's and the Gaussian's 1D taps, and how tau enters sigma's gradient),
``filter`` (the functional L, rho and G operators), ``gate`` (``EdgeGate``, ``LaplacianGate`` and the gate's
axes from the spacing), ``loss`` (``EdgeLoss``), ``schedule`` (``edge_lambda``), ``targets``
(``edge_targets``, the Boundary-Aware FCN's edge labels).
"""
