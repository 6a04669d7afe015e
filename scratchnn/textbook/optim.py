"""The optimizers' update rules as plain formulas: one step of SGD, Adam/AdamW, Adagrad,
Adadelta and RMSprop for one parameter.

Each ``*_step`` function is torch's documented algorithm (the boxes on the ``torch.optim``
pages), line by line, for one parameter θ with gradient g = ∂L/∂θ and that parameter's
optimizer state. It is a pure function: it returns the new parameter and the new state and
never modifies its inputs; a float32 parameter stays float32 (every constant is a Python float,
which NumPy casts to the array's dtype). It has no backward: an update is not differentiated.

    θ, b = sgd_step(θ, g, b, lr=0.1, momentum=0.9)            # b is None on the first step

``scratchnn.optim`` holds the fast editions: the same updates, written into ``p.data`` and the
state buffers in place, in the order of operations of torch's ``_single_tensor_*`` code, for a
whole list of parameters with groups and a state_dict. The tests prove each optimizer equal to
these formulas step by step, and these formulas equal to ``torch.optim``. The derivations and
the reasons behind each rule are in ``docs/optim.md``.

Notation: γ = lr, λ = weight_decay, t = the step number (1 for the first step). Weight decay
and maximize come first, in torch's order: g ← −g if maximize, then g ← g + λθ if λ ≠ 0.
"""
from __future__ import annotations

import numpy as np

Array = np.ndarray

__all__ = ["sgd_step", "adam_step", "adamw_step", "adagrad_step", "adadelta_step",
           "rmsprop_step"]


def _arrays(*values):
    """NumPy turns a 0-d result into a scalar; give every result back as an array (or None)."""
    return tuple(None if v is None else np.asarray(v) for v in values)


def _direction(param: Array, grad: Array, weight_decay: float, maximize: bool) -> Array:
    """g ← −g if maximize;  g ← g + λθ if λ ≠ 0 (L2 weight decay, added to the gradient)."""
    g = -grad if maximize else grad
    return g + weight_decay * param if weight_decay != 0 else g


def sgd_step(param: Array, grad: Array, momentum_buffer: Array | None, *, lr: float = 1e-3,
             momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
             nesterov: bool = False, maximize: bool = False
             ) -> tuple[Array, Array | None]:
    """θ ← θ − γ·d, where d is g, the momentum buffer b, or Nesterov's look-ahead g + μb:

        g ← −g;  g ← g + λθ                      (maximize; weight decay)
        b ← g  (first step, b is None),  else  b ← μb + (1 − τ)g       if μ ≠ 0
        d ← g + μb  if nesterov,  else  d ← b                          if μ ≠ 0,  else  d ← g
        θ ← θ − γd

    μ = momentum, τ = dampening. (torch's box writes maximize as θ ← θ + γd at the end; its code
    negates g first, so with weight decay the decay still pulls θ toward 0. This is the code.)

    Shapes:  param, grad, momentum_buffer: all θ's shape.
    Returns: (new θ, new b): b is None when μ = 0 (no state).
    Torch:   torch.optim.SGD
    """
    g = _direction(param, grad, weight_decay, maximize)
    buf = None
    if momentum != 0:
        if momentum_buffer is None:
            buf = g.copy()                                        # b₁ = g₁, undamped
        else:
            buf = momentum * momentum_buffer + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return _arrays(param - lr * g, buf)


def adam_step(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array,
              max_exp_avg_sq: Array | None, step: int, *, lr: float = 1e-3,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
              decoupled_weight_decay: bool = False
              ) -> tuple[Array, Array, Array, Array | None]:
    """θ ← θ − γ·m̂ / (√v̂ + ε): a step along the running mean of g, scaled per coordinate by
    the running root mean square of g, both bias-corrected for their zero start:

        g ← −g                                      (maximize)
        θ ← θ(1 − γλ)  if decoupled (AdamW),  else  g ← g + λθ          (weight decay)
        m ← β₁m + (1 − β₁)g                          (exp_avg: first moment)
        v ← β₂v + (1 − β₂)g²                         (exp_avg_sq: second moment)
        v_max ← max(v_max, v);  v ← v_max            (amsgrad: v never shrinks)
        m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ)         (bias correction, t = step ≥ 1)
        θ ← θ − γ m̂ / (√v̂ + ε)

    Shapes:  param, grad and every state array: θ's shape; the state starts at zeros.
    Returns: (new θ, new m, new v, new v_max): v_max is None unless amsgrad.
    Torch:   torch.optim.Adam (torch.optim.AdamW with decoupled_weight_decay=True)
    """
    beta1, beta2 = betas
    g = -grad if maximize else grad
    if decoupled_weight_decay:
        param = param * (1 - lr * weight_decay)                   # θ − γλθ, before the step
    elif weight_decay != 0:
        g = g + weight_decay * param
    m = beta1 * exp_avg + (1 - beta1) * g
    v = beta2 * exp_avg_sq + (1 - beta2) * g * g
    v_max = np.maximum(max_exp_avg_sq, v) if amsgrad else None
    m_hat = m / (1 - beta1 ** step)
    v_hat = (v_max if amsgrad else v) / (1 - beta2 ** step)
    return _arrays(param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v, v_max)


def adamw_step(param: Array, grad: Array, exp_avg: Array, exp_avg_sq: Array,
               max_exp_avg_sq: Array | None, step: int, *, lr: float = 1e-3,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False
               ) -> tuple[Array, Array, Array, Array | None]:
    """AdamW: :func:`adam_step` with decoupled weight decay θ ← θ(1 − γλ) applied to θ itself
    (not added to g, so it is not rescaled by 1/√v̂), default λ = 0.01.

    Returns: (new θ, new m, new v, new v_max).
    Torch:   torch.optim.AdamW
    """
    return adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr=lr,
                     betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                     maximize=maximize, decoupled_weight_decay=True)


def adagrad_step(param: Array, grad: Array, state_sum: Array, step: int, *, lr: float = 1e-2,
                 lr_decay: float = 0.0, weight_decay: float = 0.0, eps: float = 1e-10,
                 maximize: bool = False) -> tuple[Array, Array]:
    """θ ← θ − γₜ g / (√S + ε): each coordinate's step shrinks with the sum S of its squared
    gradients so far:

        g ← −g;  g ← g + λθ                          (maximize; weight decay)
        γₜ = γ / (1 + (t − 1)η)                       (η = lr_decay, t = step ≥ 1)
        S ← S + g²                                    (state_sum)
        θ ← θ − γₜ g / (√S + ε)

    Shapes:  param, grad, state_sum: θ's shape. S starts at initial_accumulator_value:
             ``np.full_like(param, initial_accumulator_value)``.
    Returns: (new θ, new S).
    Torch:   torch.optim.Adagrad
    """
    g = _direction(param, grad, weight_decay, maximize)
    clr = lr / (1 + (step - 1) * lr_decay)
    new_sum = state_sum + g * g
    return _arrays(param - clr * g / (np.sqrt(new_sum) + eps), new_sum)


def adadelta_step(param: Array, grad: Array, square_avg: Array, acc_delta: Array, *,
                  lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                  weight_decay: float = 0.0, maximize: bool = False
                  ) -> tuple[Array, Array, Array]:
    """θ ← θ − γΔ with Δ = (RMS of past updates / RMS of gradients) · g: a step whose units
    are θ's own, with no global learning rate needed (γ = 1 by default):

        g ← −g;  g ← g + λθ                          (maximize; weight decay)
        v ← ρv + (1 − ρ)g²                            (square_avg: running mean of g²)
        Δ ← √(u + ε) / √(v + ε) · g                   (u: acc_delta, the previous updates)
        u ← ρu + (1 − ρ)Δ²                            (running mean of Δ²)
        θ ← θ − γΔ

    Shapes:  param, grad, square_avg, acc_delta: θ's shape; v and u start at zeros.
    Returns: (new θ, new v, new u).
    Torch:   torch.optim.Adadelta
    """
    g = _direction(param, grad, weight_decay, maximize)
    v = rho * square_avg + (1 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(v + eps) * g
    u = rho * acc_delta + (1 - rho) * delta * delta
    return _arrays(param - lr * delta, v, u)


def rmsprop_step(param: Array, grad: Array, square_avg: Array, grad_avg: Array | None,
                 momentum_buffer: Array | None, *, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, maximize: bool = False
                 ) -> tuple[Array, Array, Array | None, Array | None]:
    """θ ← θ − γ g / (√ṽ + ε): each coordinate's step divided by the running RMS of its
    gradient (centered: by its running standard deviation), optionally with momentum:

        g ← −g;  g ← g + λθ                          (maximize; weight decay)
        v ← αv + (1 − α)g²                            (square_avg)
        ḡ ← αḡ + (1 − α)g;  ṽ = v − ḡ²                (centered, grad_avg ḡ),  else  ṽ = v
        b ← μb + g / (√ṽ + ε);  θ ← θ − γb            (μ = momentum > 0, buffer b)
        θ ← θ − γ g / (√ṽ + ε)                        (μ = 0)

    Shapes:  param, grad and every state array: θ's shape; the state starts at zeros.
    Returns: (new θ, new v, new ḡ, new b): ḡ is None unless centered, b None unless μ > 0.
    Torch:   torch.optim.RMSprop
    """
    g = _direction(param, grad, weight_decay, maximize)
    v = alpha * square_avg + (1 - alpha) * g * g
    g_avg = alpha * grad_avg + (1 - alpha) * g if centered else None
    v_tilde = v - g_avg * g_avg if centered else v                # Var[g] = E[g²] − E[g]²
    denom = np.sqrt(v_tilde) + eps
    if momentum > 0:
        buf = momentum * momentum_buffer + g / denom
        return _arrays(param - lr * buf, v, g_avg, buf)
    return _arrays(param - lr * g / denom, v, g_avg, None)
