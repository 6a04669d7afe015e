"""Draw the figures of the docs pages: ``python3 docs/figures.py [OUTDIR]`` (default docs/img/).

Five small PNGs, each explaining one backward pass where a picture says more than prose:

* ``im2col.png``          — im2col turns every window of the input into a column; col2im adds
                            the columns back, so overlapping positions are summed;
* ``conv_input_grad.png`` — a convolution's input gradient is a transposed convolution: each
                            dy scatters a copy of the kernel onto dx (stride 2 leaves gaps);
* ``maxpool_tie.png``     — a max-pool window with a tie: the first maximum gets dy;
* ``lstm_bptt.png``       — an LSTM unrolled over three steps, the forward arrows and the
                            backpropagation-through-time arrows (dc through the forget gate);
* ``adadelta.png``        — Adadelta's update on an elongated quadratic, computed with
                            :class:`scratchnn.optim.Adadelta`.

The numbers drawn are computed here with NumPy (and scratchnn's Adadelta), so the figures stay
true to the formulas on the docs pages. Needs matplotlib (drawn with the Agg backend).
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:            # run as a script from anywhere: import the checkout
    sys.path.insert(0, str(ROOT))

DPI = 100
COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3",
          "#8C8C8C", "#CCB974"]


# -- drawing helpers -----------------------------------------------------------------------------
def grid(ax, values, x0=0.0, y0=0.0, colors=None, fmt="{:g}", fontsize=10, cell=1.0,
         edge="#333333"):
    """Draw a matrix of numbers with its top-left corner at (x0, y0), rows going down."""
    values = np.asarray(values)
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            face = "white" if colors is None or colors[i][j] is None else colors[i][j]
            ax.add_patch(Rectangle((x0 + j * cell, y0 - (i + 1) * cell), cell, cell,
                                   facecolor=face, edgecolor=edge, lw=0.8))
            v = values[i, j]
            text = v if isinstance(v, str) else fmt.format(v)
            ax.text(x0 + (j + 0.5) * cell, y0 - (i + 0.5) * cell, text, ha="center",
                    va="center", fontsize=fontsize)


def outline(ax, x0, y0, i, j, h, w, color, lw=2.5, inset=0.0):
    """Outline the h×w block whose top-left cell is (i, j) of the grid drawn at (x0, y0)."""
    ax.add_patch(Rectangle((x0 + j + inset, y0 - i - h + inset), w - 2 * inset, h - 2 * inset,
                           fill=False, edgecolor=color, lw=lw))


def arrow(ax, start, end, color="black", style="-|>", lw=1.5, ls="-", rad=0.0, ms=14):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=ms, color=color,
                                 lw=lw, linestyle=ls, connectionstyle=f"arc3,rad={rad}"))


def canvas(width, height, xlim, ylim):
    fig, ax = plt.subplots(figsize=(width, height), dpi=DPI)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def save(fig, out: Path, name: str) -> Path:
    path = out / name
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return path


def tint(color, alpha=0.35):
    r, g, b = matplotlib.colors.to_rgb(color)
    return (1 - alpha + alpha * r, 1 - alpha + alpha * g, 1 - alpha + alpha * b)


# -- 1. im2col and col2im ----------------------------------------------------------------------
def draw_im2col(out: Path) -> Path:
    """A 4×4 input, a 2×2 kernel, stride 1: 9 windows -> a (4, 9) column matrix; col2im of
    all-ones columns counts how often each input element was read (the overlaps summed)."""
    x = np.arange(1, 17).reshape(4, 4)
    k = 2
    windows = [(i, j) for i in range(3) for j in range(3)]
    cols = np.stack([x[i:i + k, j:j + k].ravel() for i, j in windows], axis=1)   # (kH·kW, L)
    counts = np.zeros_like(x)
    for i, j in windows:                                   # col2im: add each column back
        counts[i:i + k, j:j + k] += 1

    fig, ax = canvas(11, 3.6, (-0.5, 22.5), (-6.2, 1.6))
    shown = [0, 1, 4]                                       # three windows, in their colours
    # input
    grid(ax, x, 0, 0)
    for n, w in enumerate(shown):
        i, j = windows[w]
        outline(ax, 0, 0, i, j, k, k, COLORS[n], inset=0.06 * (n + 1))
    ax.text(2, 1.0, "x  (4×4), kernel 2×2, stride 1", ha="center", fontsize=11)
    ax.text(2, -4.7, "window (i, j) = x[i:i+2, j:j+2]", ha="center", fontsize=9, color="#555")
    # columns
    colcolors = [[tint(COLORS[shown.index(c)]) if c in shown else None for c in range(9)]
                 for _ in range(4)]
    grid(ax, cols, 6, 0, colors=colcolors)
    for n, w in enumerate(shown):
        outline(ax, 6, 0, 0, w, 4, 1, COLORS[n], lw=2)
    ax.text(10.5, 1.0, "im2col:  cols (kH·kW, oH·oW) = (4, 9)", ha="center", fontsize=11)
    ax.text(10.5, -4.7, "one column per window; y = W @ cols", ha="center", fontsize=9,
            color="#555")
    arrow(ax, (4.2, -2), (5.8, -2))
    # col2im
    heat = {1: "#FFFFFF", 2: tint("#DD8452", 0.35), 4: tint("#C44E52", 0.5)}
    grid(ax, np.array([[f"×{c}" for c in row] for row in counts]), 17.5, 0,
         colors=[[heat[c] for c in row] for row in counts])
    ax.text(19.5, 1.0, "col2im: add every column back", ha="center", fontsize=11)
    ax.text(19.5, -4.7, "an element read by m windows\nreceives the sum of m entries",
            ha="center", va="top", fontsize=9, color="#555")
    arrow(ax, (15.2, -2), (17.3, -2))
    ax.text(16.25, -1.6, "adjoint", ha="center", fontsize=9)
    ax.text(11, -6.0, "dW = dy @ colsᵀ reads the same columns;  dx = col2im(Wᵀ @ dy) "
            "adds the column gradients back where they came from",
            ha="center", fontsize=9.5, style="italic")
    return save(fig, out, "im2col.png")


# -- 2. the input gradient of a convolution is a transposed convolution ------------------------
def conv_input_grad(dy: np.ndarray, w: np.ndarray, stride: int, size: int) -> np.ndarray:
    """dx of y = conv(x, w, stride): every dy[i, j] adds dy[i, j]·w onto its window of dx."""
    k = w.shape[0]
    dx = np.zeros((size, size))
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            dx[i * stride:i * stride + k, j * stride:j * stride + k] += dy[i, j] * w
    return dx


def draw_conv_input_grad(out: Path) -> Path:
    w = np.array([[1, 0, -1], [2, 1, 0], [0, 1, 1]])
    dy = np.array([[1, 2], [3, -1]])
    s, k, size = 2, 3, 5
    dx = conv_input_grad(dy, w, s, size)
    # the same as a stride-1 correlation of the zero-dilated, (k-1)-padded dy with the
    # flipped kernel: check it, since the figure claims it
    dil = np.zeros((s * (dy.shape[0] - 1) + 1,) * 2)
    dil[::s, ::s] = dy
    padded = np.pad(dil, k - 1)
    flipped = w[::-1, ::-1]
    corr = np.array([[np.sum(padded[i:i + k, j:j + k] * flipped) for j in range(size)]
                     for i in range(size)])
    assert np.array_equal(corr, dx)

    fig, ax = canvas(12.5, 4.4, (-0.5, 27.5), (-8.3, 1.8))
    # kernel and dy
    grid(ax, w, 0, 0)
    ax.text(1.5, 0.8, "w (3×3)", ha="center", fontsize=11)
    ax.text(-0.4, 1.7, "forward: y = conv2d(x, w, stride=2), x (5×5) → y (2×2)", fontsize=10,
            color="#555")
    grid(ax, dy, 0.5, -4.3, colors=[[tint(COLORS[0]), tint(COLORS[1])],
                                    [tint(COLORS[2]), tint(COLORS[3])]])
    ax.text(1.5, -3.6, "dy (2×2)", ha="center", fontsize=11)
    # scatter view
    x0 = 5.5
    colors = [[None] * size for _ in range(size)]
    for n, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for p in range(k):
            for q in range(k):
                r, c = i * s + p, j * s + q
                colors[r][c] = tint(COLORS[n]) if colors[r][c] is None else "#D9D9D9"
    grid(ax, dx, x0, 0, colors=colors)
    for n, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        outline(ax, x0, 0, i * s, j * s, k, k, COLORS[n], lw=2, inset=0.05 * (n + 1))
    ax.text(x0 + 2.5, 0.8, "dx (5×5): each dy[i,j]·w added at (2i, 2j)", ha="center",
            fontsize=11)
    ax.text(x0 + 2.5, -5.6, "grey: windows overlap (stride 2 < kernel 3),\nthe contributions "
            "add up", ha="center", va="top", fontsize=9, color="#555")
    arrow(ax, (3.2, -5.3), (x0 - 0.2, -2.5), rad=-0.2)
    ax.text(3.95, -4.6, "scatter", fontsize=9)
    ax.text(13.5, -2.5, "=", fontsize=22, ha="center", va="center")
    # transposed-convolution view
    x1 = 15.0
    n_p = padded.shape[0]
    pcolors = [[None] * n_p for _ in range(n_p)]
    for a in range(dy.shape[0]):
        for b in range(dy.shape[1]):
            pcolors[k - 1 + a * s][k - 1 + b * s] = tint(COLORS[2 * a + b])
    for r in range(n_p):
        for c in range(n_p):
            if not (k - 1 <= r < n_p - k + 1 and k - 1 <= c < n_p - k + 1):
                pcolors[r][c] = "#F2F2F2"
    cell = 0.72
    grid(ax, padded.astype(int), x1, 0, colors=pcolors, cell=cell, fontsize=8)
    ax.add_patch(Rectangle((x1 + 0 * cell, -3 * cell), 3 * cell, 3 * cell, fill=False,
                           edgecolor="black", lw=2.2, linestyle="--"))
    ax.text(x1 + n_p * cell / 2, 0.8, "dy with s−1 = 1 zero between entries,\npadded by k−1 = 2 on every side",
            ha="center", fontsize=10)
    grid(ax, flipped, x1 + n_p * cell + 1.2, -0.9, cell=cell, fontsize=8)
    ax.text(x1 + n_p * cell + 1.2 + 1.5 * cell, -0.3, "w flipped", ha="center", fontsize=10)
    ax.text(x1 + 3.7, -6.0, "slide the flipped kernel at stride 1:\ndx[r, c] = Σ pad(dy)[r+p, c+q]"
            " · w[2−p, 2−q]", ha="center", va="top", fontsize=9.5)
    ax.text(13.5, -8.1, "dx = conv_transpose2d(dy, w, stride=2): the input gradient of a "
            "convolution is a transposed convolution of dy", ha="center", fontsize=10,
            style="italic")
    return save(fig, out, "conv_input_grad.png")


# -- 3. a max-pool window with a tie -----------------------------------------------------------
def draw_maxpool_tie(out: Path) -> Path:
    x = np.array([[1, 3, 2, 0],
                  [1, 2, 5, 1],
                  [0, 4, 7, 7],
                  [2, 1, 7, 6]])
    dy = np.array([[0.5, -1.0], [2.0, 0.3]])
    k = 2
    y = np.zeros((2, 2), int)
    dx = np.zeros((4, 4))
    first = {}
    ties = set()
    for i in range(2):
        for j in range(2):
            win = x[i * k:(i + 1) * k, j * k:(j + 1) * k]
            kid = int(np.argmax(win))                  # the first maximum in row-major order
            p, q = divmod(kid, k)
            y[i, j] = win[p, q]
            dx[i * k + p, j * k + q] += dy[i, j]
            first[(i, j)] = (i * k + p, j * k + q)
            for pp, qq in zip(*np.nonzero(win == win.max())):
                if (pp, qq) != (p, q):
                    ties.add((i * k + pp, j * k + qq))
    win_col = [[COLORS[0], COLORS[1]], [COLORS[2], COLORS[3]]]
    xcol = [[tint(win_col[r // 2][c // 2], 0.15) for c in range(4)] for r in range(4)]
    for (i, j), (r, c) in first.items():
        xcol[r][c] = tint(win_col[i][j], 0.6)
    for r, c in ties:
        xcol[r][c] = "#FFE08A"

    fig, ax = canvas(12, 3.9, (-0.5, 23.5), (-6.3, 1.7))
    grid(ax, x, 0, 0, colors=xcol)
    for i in range(2):
        for j in range(2):
            outline(ax, 0, 0, 2 * i, 2 * j, 2, 2, win_col[i][j], lw=2.5, inset=0.04)
    ax.text(2, 0.8, "x (4×4), max_pool2d(x, 2)", ha="center", fontsize=11)
    ax.text(2, -4.5, "bottom-right window: 7, 7, 7 tie\nrow-major order: (2,2) comes first",
            ha="center", va="top", fontsize=9, color="#555")
    grid(ax, y, 6.5, -1, colors=[[tint(c, 0.6) for c in row] for row in win_col])
    ax.text(7.5, -0.2, "y = max", ha="center", fontsize=11)
    arrow(ax, (4.2, -2), (6.3, -2))
    grid(ax, dy, 11, -1, fmt="{:+.1f}", colors=[[tint(c, 0.6) for c in row] for row in win_col])
    ax.text(12, -0.2, "dy", ha="center", fontsize=11)
    dcol = [[None] * 4 for _ in range(4)]
    for (i, j), (r, c) in first.items():
        dcol[r][c] = tint(win_col[i][j], 0.6)
    for r, c in ties:
        dcol[r][c] = "#FFE08A"
    labels = np.array([[f"{v:+.1f}" if v else "0" for v in row] for row in dx])
    grid(ax, labels, 16.5, 0, colors=dcol)
    for i in range(2):
        for j in range(2):
            outline(ax, 16.5, 0, 2 * i, 2 * j, 2, 2, win_col[i][j], lw=2.5, inset=0.04)
    ax.text(18.5, 0.8, "dx: dy goes to the first maximum", ha="center", fontsize=11)
    ax.text(18.5, -4.5, "yellow: tied with the winner, but gets 0\n(torch's rule: the first "
            "maximal element)", ha="center", va="top", fontsize=9, color="#555")
    arrow(ax, (13.2, -2), (16.3, -2))
    ax.text(14.75, -2.3, "dx[window] +=\ndy·[kid = j]", ha="center", va="top", fontsize=8.5)
    return save(fig, out, "maxpool_tie.png")


# -- 4. an unrolled LSTM and backpropagation through time --------------------------------------
def draw_lstm_bptt(out: Path) -> Path:
    fig, ax = canvas(12, 5.4, (-1.5, 22.5), (-2.2, 9.6))
    fwd, bwd = "#222222", "#C44E52"
    xs = [2.5, 9.5, 16.5]
    w_cell, h_cell = 4.0, 3.6
    for t, x0 in enumerate(xs, start=1):
        ax.add_patch(FancyBboxPatch((x0, 2.0), w_cell, h_cell, boxstyle="round,pad=0.1",
                                    facecolor="#EAF0F8", edgecolor=COLORS[0], lw=1.6))
        ax.text(x0 + w_cell / 2, 4.55, f"LSTM cell, step {t}", ha="center", fontsize=10)
        ax.text(x0 + w_cell / 2, 3.85, "i, f, g, o = σ, σ, tanh, σ\n(W_ih x + W_hh h + b)",
                ha="center", va="center", fontsize=8)
        ax.text(x0 + w_cell / 2, 3.05, "c = f⊙c + i⊙g\nh = o ⊙ tanh c", ha="center",
                va="center", fontsize=8)
        # input x_t
        ax.add_patch(Rectangle((x0 + 1.4, -0.9), 1.2, 0.9, facecolor="white", edgecolor=fwd))
        ax.text(x0 + 2.0, -0.45, f"$x_{t}$", ha="center", va="center", fontsize=11)
        arrow(ax, (x0 + 2.0, 0.0), (x0 + 2.0, 1.85), color=fwd)
        arrow(ax, (x0 + 2.7, 1.85), (x0 + 2.7, 0.1), color=bwd, ls="--")
        ax.text(x0 + 2.85, 0.9, f"$dx_{t}$", color=bwd, fontsize=9)
        # output h_t and the loss's gradient
        ax.add_patch(Rectangle((x0 + 1.4, 7.8), 1.2, 0.9, facecolor="white", edgecolor=fwd))
        ax.text(x0 + 2.0, 8.25, f"$h_{t}$", ha="center", va="center", fontsize=11)
        arrow(ax, (x0 + 1.6, 5.75), (x0 + 1.6, 7.75), color=fwd)
        arrow(ax, (x0 + 2.4, 7.75), (x0 + 2.4, 5.75), color=bwd, ls="--")
        ax.text(x0 + 2.55, 6.9, f"$dout_{t}$", color=bwd, fontsize=9)
    # the recurrent state: c on top rail, h on the middle rail
    labels = ["$c_0, h_0$", None, None, "$c_3, h_3$"]
    for n in range(4):
        left = -1.3 if n == 0 else xs[n - 1] + w_cell + 0.1
        right = xs[n] - 0.1 if n < 3 else 22.3
        yc, yh = 5.1, 2.6
        arrow(ax, (left, yc), (right, yc), color=fwd)
        arrow(ax, (left, yh), (right, yh), color=fwd)
        arrow(ax, (right, yc + 0.45), (left, yc + 0.45), color=bwd, ls="--")
        arrow(ax, (right, yh - 0.45), (left, yh - 0.45), color=bwd, ls="--")
        mid = (left + right) / 2
        t = n
        if 0 < n < 3:
            ax.text(mid, yc - 0.45, f"$c_{t}$", ha="center", fontsize=10)
            ax.text(mid, yh + 0.2, f"$h_{t}$", ha="center", fontsize=10)
            ax.text(mid, yc + 0.65, f"$dc_{t}$", ha="center", color=bwd, fontsize=10)
            ax.text(mid, yh - 1.05, f"$dh_{t}$", ha="center", color=bwd, fontsize=10)
        elif n == 0:
            ax.text(mid, yc - 0.45, "$c_0$", ha="center", fontsize=10)
            ax.text(mid, yh + 0.2, "$h_0$", ha="center", fontsize=10)
            ax.text(mid, yc + 0.65, "$dc_0$", ha="center", color=bwd, fontsize=10)
            ax.text(mid, yh - 1.05, "$dh_0$", ha="center", color=bwd, fontsize=10)
        else:
            ax.text(mid, yc - 0.45, "$c_3$", ha="center", fontsize=10)
            ax.text(mid, yh + 0.2, "$h_3$", ha="center", fontsize=10)
            ax.text(mid, yc + 0.65, "$dc_n$", ha="center", color=bwd, fontsize=10)
            ax.text(mid, yh - 1.05, "$dh_n$", ha="center", color=bwd, fontsize=10)
    del labels
    ax.text(10.5, 9.3, "forward: left to right (solid)      BPTT: right to left (dashed red), "
            "one cell backward per step", ha="center", fontsize=10.5)
    ax.text(10.5, -1.5, r"step t backward:  $dh_t = dout_t + dh_t^{(t+1)}$,   "
            r"$dc_t \;{+}{=}\; dh_t \odot o_t \odot (1 - \tanh^2 c_t)$;   then   "
            r"$dc_{t-1} = dc_t \odot f_t$  (through the forget gate),   "
            r"$dh_{t-1} = W_{hh}^{\top} [di, df, dg, do]_t$",
            ha="center", va="top", fontsize=9.5, color=bwd)
    return save(fig, out, "lstm_bptt.png")


# -- 5. the Adadelta update --------------------------------------------------------------------
def adadelta_run(start, curv, steps, **options):
    """Minimise f(θ) = ½ Σ curv·θ² with scratchnn.optim.Adadelta; return the trajectory and,
    per step, E[g²], E[Δx²] and the rate √(E[Δx²] + ε)/√(E[g²] + ε) that multiplies g."""
    import scratchnn as snn
    from scratchnn.nn.module import Parameter

    p = Parameter(np.array(start, dtype=np.float64))
    opt = snn.optim.Adadelta([p], **options)
    eps = options.get("eps", 1e-6)
    path, eg2, edx2, rate = [p.data.copy()], [], [], []
    acc_delta = np.zeros(2)
    for _ in range(steps):
        p.grad = curv * p.data                            # ∇f
        opt.step()
        state = opt.state_dict()["state"][0]
        square_avg = np.array(state["square_avg"])
        rate.append(np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps))   # E[Δx²] before
        acc_delta = np.array(state["acc_delta"])
        eg2.append(square_avg)
        edx2.append(acc_delta)
        path.append(p.data.copy())
    return np.array(path), np.array(eg2), np.array(edx2), np.array(rate)


def draw_adadelta(out: Path) -> Path:
    curv = np.array([1.0, 20.0])                          # 20× steeper along θ₂
    start = (-4.0, 2.0)
    steps = 300
    path, eg2, edx2, rate = adadelta_run(start, curv, steps, lr=1.0, rho=0.95, eps=1e-4)
    slow, *_ = adadelta_run(start, curv, steps, lr=1.0, rho=0.9, eps=1e-6)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0), dpi=DPI,
                             gridspec_kw=dict(width_ratios=[1.25, 1, 1]))
    ax = axes[0]
    g1, g2 = np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-1.5, 2.5, 200))
    ax.contour(g1, g2, 0.5 * (curv[0] * g1 ** 2 + curv[1] * g2 ** 2), levels=12,
               colors="#BBBBBB", linewidths=0.8)
    ax.plot(path[:, 0], path[:, 1], ".-", color=COLORS[0], ms=3, lw=1,
            label="ρ = 0.95, ε = 1e-4")
    ax.plot(slow[:, 0], slow[:, 1], ".-", color=COLORS[1], ms=2, lw=0.8,
            label="torch's defaults ρ = 0.9, ε = 1e-6")
    ax.plot(*start, "ko")
    ax.plot(0, 0, "k*", ms=10)
    ax.set_title(f"{steps} steps on f = ½(θ₁² + 20 θ₂²), lr = 1", fontsize=10)
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_aspect("equal")

    t = np.arange(1, steps + 1)
    ax = axes[1]
    for n, name in enumerate(["θ₁", "θ₂"]):
        ax.semilogy(t, eg2[:, n], color=COLORS[n], label=f"E[g²] of {name}")
        ax.semilogy(t, edx2[:, n], color=COLORS[n], ls="--", label=f"E[Δx²] of {name}")
    ax.set_title("running averages (ρ = 0.95)", fontsize=10)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    ax = axes[2]
    for n, name in enumerate(["θ₁", "θ₂"]):
        ax.semilogy(t, rate[:, n], color=COLORS[n], label=f"rate of {name}")
    ax.set_title("rate √(E[Δx²]+ε) / √(E[g²]+ε) multiplying g", fontsize=10)
    ax.text(0.97, 0.05, "near √ε / |g| at first; it rises as E[g²] decays;\nthe steep θ₂ gets "
            "the smaller rate", transform=ax.transAxes, ha="right", fontsize=8)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    fig.suptitle(r"Adadelta:  $E[g^2] \leftarrow \rho E[g^2] + (1-\rho) g^2$,   "
                 r"$\Delta x = \dfrac{\sqrt{E[\Delta x^2] + \varepsilon}}"
                 r"{\sqrt{E[g^2] + \varepsilon}}\, g$,   "
                 r"$E[\Delta x^2] \leftarrow \rho E[\Delta x^2] + (1-\rho) \Delta x^2$,   "
                 r"$\theta \leftarrow \theta - \mathrm{lr}\cdot\Delta x$",
                 fontsize=11.5, y=1.02)
    fig.tight_layout()
    return save(fig, out, "adadelta.png")


FIGURES = {"im2col.png": draw_im2col, "conv_input_grad.png": draw_conv_input_grad,
           "maxpool_tie.png": draw_maxpool_tie, "lstm_bptt.png": draw_lstm_bptt,
           "adadelta.png": draw_adadelta}


def main(argv: list[str] | None = None) -> list[Path]:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1:
        raise SystemExit("usage: python3 docs/figures.py [OUTDIR]")
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent / "img"
    out.mkdir(parents=True, exist_ok=True)
    written = [draw(out) for draw in FIGURES.values()]
    for path in written:
        print(f"{path}  ({path.stat().st_size // 1024} KiB)")
    return written


if __name__ == "__main__":
    main()
