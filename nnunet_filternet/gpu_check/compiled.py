"""A network under ``torch.compile`` against itself in eager mode: outputs and parameter gradients of one step.

Tolerances (inductor reorders float32 reductions and fuses elementwise work): every output within
:data:`OUTPUT_TOLERANCE` of the largest eager output magnitude, every parameter gradient within
:data:`GRADIENT_TOLERANCE` of the largest eager gradient magnitude of the network. A per-tensor relative error
would be meaningless for the conv biases in front of instance norms, whose true gradient is 0 and whose computed
one is rounding noise. Measured on the CPU (tiny plans, inductor): outputs <= 3e-6, gradients <= 5e-7.
"""

from __future__ import annotations

import torch

OUTPUT_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-4


def _leaves(output) -> list[torch.Tensor]:
    """Every tensor of a network output: a tensor, a deep-supervision list, or the BA-FCN's (final, region, edge)."""
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in _leaves(item)]


def outputs_and_gradients(model, network: torch.nn.Module, x: torch.Tensor):
    """Outputs of ``model(x)`` and the gradients of ``network``'s parameters of a loss touching every output.

    Args:
        model: ``network`` itself or its compiled wrapper (which shares the parameters).
        network: the eager module.
        x: input batch B C *spatial.

    Returns:
        (list of detached outputs, dict parameter name -> gradient) for the parameters that got one.
    """
    network.zero_grad(set_to_none=True)
    outputs = _leaves(model(x))
    sum(((o.float() - 0.1 * k) ** 2).mean() for k, o in enumerate(outputs)).backward()
    gradients = {name: p.grad.clone() for name, p in network.named_parameters() if p.grad is not None}
    return [o.detach() for o in outputs], gradients


def compare_to_eager(eager, compiled) -> list[str]:
    """Problems of ``compiled``'s (outputs, gradients) against ``eager``'s (empty: within the tolerances)."""
    (out_e, grad_e), (out_c, grad_c) = eager, compiled
    if [o.shape for o in out_c] != [o.shape for o in out_e]:
        return [f"output shapes {[tuple(o.shape) for o in out_c]}, eager {[tuple(o.shape) for o in out_e]}"]
    if grad_c.keys() != grad_e.keys():
        return [f"gradients of {sorted(set(grad_c) ^ set(grad_e))} only on one side"]
    problems = []
    for k, (e, c) in enumerate(zip(out_e, out_c)):
        error = (c - e).abs().max().item() / e.abs().max().item()
        if not error <= OUTPUT_TOLERANCE:
            problems.append(f"output {k}: max difference {error:.2e} of the largest output (> {OUTPUT_TOLERANCE:g})")
    scale = max(g.abs().max().item() for g in grad_e.values())
    for name, g in grad_e.items():
        error = (grad_c[name] - g).abs().max().item() / scale
        if not error <= GRADIENT_TOLERANCE:
            problems.append(f"gradient of {name}: max difference {error:.2e} of the largest gradient")
    return problems


def check_compiled(network: torch.nn.Module, x: torch.Tensor, backend: str = "inductor") -> list[str]:
    """Compile ``network`` whole (``fullgraph=True``: a graph break raises) and compare one step with eager's."""
    eager = outputs_and_gradients(network, network, x)
    compiled = torch.compile(network, backend=backend, fullgraph=True)
    return compare_to_eager(eager, outputs_and_gradients(compiled, network, x))
