"""The trainable edge gate F = G(sigma) * rho(L * x), its edge loss and lambda schedule, and edge maps.

Modules: ``kernels`` (Laplacian and differentiable Gaussian kernel builders), ``filter`` (the functional
L-rho-G operator), ``gate`` (the ``EdgeGate`` module and the in-plane axis choice), ``loss`` (``EdgeLoss``),
``schedule`` (``edge_lambda``), ``targets`` (``edge_targets``, the Boundary-Aware FCN's edge labels).
"""
