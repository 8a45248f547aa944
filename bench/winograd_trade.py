"""Is Winograd F(2×2, 3×3) worth it for nnscratch's 3×3 convolutions?  The measured trade, pass by pass.

    python bench/winograd_trade.py                 # the 3×3 layers of the Keras convnet and the cnn preset
    python bench/winograd_trade.py --repeat 50     # more repetitions per figure

For each layer shape, one training step's convolution (forward, dW and dX) is timed two ways on one
thread, batch 128, float32: the layer as nnscratch runs it (im2col + one matrix product per pass, its
buffers kept), and F(2×2, 3×3), which trades multiplications for additions:

    Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]       (input transform, 4×4)
    G  = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]                     (filter transform, 4×3)
    Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]                                    (output transform, 2×4)

Every 2×2 output tile t reads the 4×4 input tile d_t at (2·ty, 2·tx) of the zero-padded input:

    forward   U = G g Gᵀ (per c, f)     V_t = Bᵀ d_t B (per c)     M_t[ξν] = Σ_c V_t[ξν, c] U[ξν, c, f]
              Y_t = Aᵀ M_t A            (16 matrix products (T, C)·(C, F) in place of one (M, 9C)·(9C, F))
    backward  dM_t = A dY_t Aᵀ          dU[ξν] = Σ_t V_t[ξν]ᵀ dM_t[ξν]     dW = Gᵀ dU G
              dV_t = dM_t[ξν] U[ξν]ᵀ     dX += B dV_t Bᵀ at the tile's place (tiles overlap by 2)

(the backward lines are the transposes of the forward's linear maps, so they are the exact gradient of
the same function).  T = m·⌈Ho/2⌉·⌈Wo/2⌉ tiles; the products do 16·T·C·F multiply-adds against im2col's
9·M·C·F, 2.25× fewer when Ho and Wo are even (11×11 outputs are padded to 12×12: 1.89×).

The transforms are written as whole-array additions over strided views of the image (the separable
rows, then columns), the fewest NumPy passes they allow.  The script prints, per layer, each way's time
for forward and backward, the products alone and the transforms alone, and checks that both ways agree.
nnscratch keeps im2col where the table says Winograd's transforms cost more than the products save.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from nnscratch.layers import Conv2D

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# (input channels, side, filters, where): the 3×3 convolutions with more than one input channel
LAYERS = {
    "keras conv64k3": (32, 13, 64),
    "cnn conv32k3": (16, 13, 32),
}


def combine(coefficients, terms, out: np.ndarray) -> None:
    """out = Σ_j coefficients[j]·terms[j] in the fewest passes (the coefficients are 0, ±1 or ±½)."""
    pairs = sorted(((c, t) for c, t in zip(coefficients, terms, strict=True) if c), key=lambda pair: pair[0] < 0)
    (c0, t0), rest = pairs[0], pairs[1:]
    if c0 == 1 and rest and abs(rest[0][0]) == 1:
        c1, t1 = rest.pop(0)
        (np.add if c1 > 0 else np.subtract)(t0, t1, out=out)
    elif c0 == 1:
        np.copyto(out, t0)
    else:
        np.multiply(t0, c0, out=out)
    for c, t in rest:
        if abs(c) == 1:
            (np.add if c > 0 else np.subtract)(out, t, out=out)
        else:
            out += c * t


class Winograd:
    """F(2×2, 3×3) for one layer shape, its buffers kept from call to call like the layer's."""

    def __init__(self, m: int, C: int, side: int, F: int, dtype=np.float32):
        self.m, self.C, self.F, self.side = m, C, F, side
        out = side - 2
        self.Th = (out + 1) // 2
        self.Hp = 2 * self.Th + 2
        self.T = m * self.Th * self.Th
        th, hp = self.Th, self.Hp
        self.Xp = np.zeros((m, hp, hp, C), dtype)
        self.R = np.empty((4, m, th, hp, C), dtype)
        self.V = np.empty((16, m, th, th, C), dtype)
        self.M = np.empty((16, self.T, F), dtype)
        self.S = np.empty((2, 4, m, th, th, F), dtype)
        self.Y = np.empty((m, th, 2, th, 2, F), dtype)
        self.dYp = np.zeros((m, 2 * th, 2 * th, F), dtype)
        self.Q = np.empty((2, 4, m, th, th, F), dtype)
        self.dM = np.empty((16, self.T, F), dtype)
        self.dV = np.empty((16, self.T, C), dtype)
        self.parts = np.empty((4, m, th, th, C), dtype)
        self.dR = np.empty((4, m, th, hp, C), dtype)
        self.dXp = np.empty((m, hp, hp, C), dtype)
        self.rows = np.empty((m, th, hp, C), dtype)
        self.seconds = {"transforms": 0.0, "products": 0.0}

    def _clock(self, part: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[part] += now - start
        return now

    def forward(self, X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        m, th, side, out = self.m, self.Th, self.side, self.side - 2
        t = time.perf_counter()
        self.U = np.einsum("ai,ijcf,bj->abcf", G, W, G).reshape(16, self.C, self.F).astype(X.dtype)
        self.Xp[:, :side, :side] = X
        for i in range(4):  # rows of tiles: R_i = Σ_j Bᵀ[i, j] Xp[2·ty + j]
            combine(BT[i], [self.Xp[:, j : j + 2 * th : 2] for j in range(4)], self.R[i])
        for i in range(4):  # then columns: V[4i + k] = Σ_j Bᵀ[k, j] R_i[..., 2·tx + j]
            columns = [self.R[i][:, :, j : j + 2 * th : 2] for j in range(4)]
            for k in range(4):
                combine(BT[k], columns, self.V[4 * i + k])
        t = self._clock("transforms", t)
        np.matmul(self.V.reshape(16, self.T, self.C), self.U, out=self.M)
        t = self._clock("products", t)
        self.M[5] += b  # Aᵀ[:, 1] is all ones: every output of a tile gets M[1, 1]
        M = self.M.reshape(4, 4, m, th, th, self.F)
        for i in range(2):
            combine(AT[i], [M[xi] for xi in range(4)], self.S[i])
            for j in range(2):
                combine(AT[j], [self.S[i][nu] for nu in range(4)], self.Y[:, :, i, :, j])
        self._clock("transforms", t)
        return self.Y.reshape(m, 2 * th, 2 * th, self.F)[:, :out, :out]

    def backward(self, dY: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m, th, side, out = self.m, self.Th, self.side, self.side - 2
        t = time.perf_counter()
        self.dYp[:, :out, :out] = dY
        tiles = self.dYp.reshape(m, th, 2, th, 2, self.F)
        for i in range(2):  # Q_i[ν] = Σ_j Aᵀ[j, ν] dY[.., i, .., j]
            for nu in range(4):
                combine(AT[:, nu], [tiles[:, :, i, :, j] for j in range(2)], self.Q[i][nu])
        dM = self.dM.reshape(4, 4, m, th, th, self.F)
        for xi in range(4):  # dM[ξ, ν] = Σ_i Aᵀ[i, ξ] Q_i[ν]
            for nu in range(4):
                combine(AT[:, xi], [self.Q[i][nu] for i in range(2)], dM[xi, nu])
        db = dY.reshape(-1, self.F).sum(axis=0)
        t = self._clock("transforms", t)
        dU = np.matmul(self.V.reshape(16, self.T, self.C).transpose(0, 2, 1), self.dM)
        np.matmul(self.dM, self.U.transpose(0, 2, 1), out=self.dV)
        t = self._clock("products", t)
        dW = np.einsum("ai,abcf,bj->ijcf", G, dU.reshape(4, 4, self.C, self.F), G)
        dV = self.dV.reshape(4, 4, m, th, th, self.C)
        for i in range(4):  # columns back: dR_i[2·tx + j] += Σ_k Bᵀ[k, j] dV[i, k], tiles overlapping
            self.dR[i][:, :, -2:] = 0.0
            for j in range(4):
                combine(BT[:, j], [dV[i, k] for k in range(4)], self.parts[j])
            self.dR[i][:, :, 0 : 2 * th : 2] = self.parts[0]
            self.dR[i][:, :, 1 : 2 * th : 2] = self.parts[1]
            self.dR[i][:, :, 2 : 2 * th + 2 : 2] += self.parts[2]
            self.dR[i][:, :, 3 : 2 * th + 2 : 2] += self.parts[3]
        self.dXp[:, -2:] = 0.0
        for j in range(4):  # then rows back onto the padded input
            combine(BT[:, j], [self.dR[i] for i in range(4)], self.rows)
            target = self.dXp[:, j : j + 2 * th : 2]
            if j < 2:
                np.copyto(target, self.rows)
            else:
                target += self.rows
        self._clock("transforms", t)
        return self.dXp[:, :side, :side], dW.astype(dY.dtype), db


def best_of(fn, repeat: int) -> float:
    """The fastest of ``repeat`` calls, in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(C: int, side: int, F: int, repeat: int, m: int = 128) -> dict:
    """One layer shape: im2col and Winograd, forward and backward, products and transforms, in ms."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, side, side, C)).astype(np.float32)
    layer = Conv2D(F, 3).materialize((C, side, side), dtype="float32")
    Y, cache = layer.forward(X, training=True)
    dY = rng.standard_normal(Y.shape).astype(np.float32)
    grads = layer.views(np.zeros_like(layer.flat))
    wino = Winograd(m, C, side, F)

    # Both ways compute the same convolution and gradients (to float32 rounding).
    Yw = wino.forward(X, layer.W, layer.b)
    dXw, dWw, dbw = wino.backward(dY)
    dX = layer.backward(dY, cache, grads)
    scale = float(np.abs(Y).max())
    agree = {
        "Y": float(np.abs(Yw - Y).max()) / scale,
        "dX": float(np.abs(dXw - dX).max() / np.abs(dX).max()),
        "dW": float(np.abs(dWw - grads["W"]).max() / np.abs(grads["W"]).max()),
        "db": float(np.abs(dbw - grads["b"]).max() / np.abs(grads["b"]).max()),
    }

    im2col_forward = best_of(lambda: layer.forward(X, training=True), repeat)
    im2col_backward = best_of(lambda: layer.backward(dY, cache, grads), repeat)
    M, K = m * (side - 2) ** 2, 9 * C
    cols, Wb, out = np.ones((M, K + 1), np.float32), np.ones((K + 1, F), np.float32), np.empty((M, F), np.float32)
    planes = np.empty((M, C), np.float32)
    Wt = np.ones((F, C), np.float32)
    dY2 = dY.reshape(M, F)
    im2col_products = best_of(lambda: np.matmul(cols, Wb, out=out), repeat)
    im2col_products += best_of(lambda: cols.T @ dY2, repeat)
    im2col_products += 9 * best_of(lambda: np.matmul(dY2, Wt, out=planes), repeat)

    def winograd_step(part: str):
        def step():
            wino.forward(X, layer.W, layer.b) if part == "forward" else wino.backward(dY)

        return step

    wino_forward = best_of(winograd_step("forward"), repeat)
    wino_backward = best_of(winograd_step("backward"), repeat)
    wino.seconds = {"transforms": 0.0, "products": 0.0}
    for _ in range(repeat):
        wino.forward(X, layer.W, layer.b)
        wino.backward(dY)
    ms = 1e3
    return {
        "shape": {"batch": m, "input": [side, side, C], "filters": F},
        "im2col_ms": {
            "forward": im2col_forward * ms,
            "backward": im2col_backward * ms,
            "products": im2col_products * ms,
        },
        "winograd_ms": {
            "forward": wino_forward * ms,
            "backward": wino_backward * ms,
            "products": wino.seconds["products"] / repeat * ms,
            "transforms": wino.seconds["transforms"] / repeat * ms,
        },
        "multiplications_saved": (9 * M * C * F) / (16 * wino.T * C * F),
        "relative_difference": agree,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="repetitions per figure, the best counted (default 20)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--output", default="bench/results/winograd_trade.json", help="where to write the JSON")
    args = parser.parse_args(argv)
    results = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "threads": 1, "layers": {}}
    with threadpool_limits(1):
        for name, (C, side, F) in LAYERS.items():
            results["layers"][name] = row = measure(C, side, F, args.repeat, args.batch)
            i, w = row["im2col_ms"], row["winograd_ms"]
            print(
                f"{name}: im2col forward {i['forward']:.2f} + backward {i['backward']:.2f} ms "
                f"(products {i['products']:.2f}); Winograd forward {w['forward']:.2f} + backward "
                f"{w['backward']:.2f} ms (products {w['products']:.2f}, transforms {w['transforms']:.2f}); "
                f"{row['multiplications_saved']:.2f}× fewer multiplications"
            )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
