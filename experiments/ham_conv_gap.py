"""Why the convolutional HAM trails its feed-forward twin (issue 13; docs/ham.md, "Why the memory trails its
twin"): measurements on a trained run's checkpoint (``conv`` recipe without a hidden layer), chosen with
``--parts`` (all by default):

- ``accuracy``: test accuracy read feed-forward (one bottom-up pass: convolution, ReLU, pooling, ReLU, read-out;
  no feedback) against the converged fixed point (``HAMClassifier.settle``, strict), and at the fixed point of
  the features - pooled loop alone (the label layer's feedback cut); ``train``: the same on the first ``--size``
  training images (overfitting?);
- ``flips``: the test images the fixed point gets wrong that the feed-forward read-out gets right and the
  reverse: how far their fixed points move from the bottom-up pass, and whether the label feedback flips them;
- ``gain``: the largest eigenvalue ``lambda`` of the fixed-point map's Jacobian ``J = du/dx`` on the free layers
  (power iteration on ``J^T J^T``: the chain features - pooled - labels is bipartite, so the spectrum is real and
  symmetric, ``+-lambda``), with and without the label feedback, per sample, against the steps each sample takes
  to settle (exponential Euler at the recipe's ``dt``: the slowest mode keeps ``e^-dt + (1 - e^-dt) lambda`` of
  itself per step);
- ``sensitivity``: how far one optimiser step (Adam's first: ``lr`` times the gradient's sign) moves the answers
  read feed-forward and at the fixed point;
- ``gradient``: the implicit gradient at the recipe's ``tol`` and ``adjoint_tol`` against a reference (float64,
  relaxed to ``1e-8``, adjoint to ``1e-10``), with a tight adjoint, in float64, with tighter relaxations, and the
  unrolled gradient (float64, backpropagated through every step to ``1e-8``) on a few images; whether its error
  is a bias (it adds up over minibatches) or noise.

    ASSOCMEM_DATA=../shared/data python experiments/ham_conv_gap.py /work/runs/conv-fashion-e8/run

One thread; about 20 minutes of CPU for the default sizes (two strict relaxations of 10000 images and the
gradients dominate).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from assocmem.dynamics import Implicit, relax
from assocmem.ham import HAMClassifier, load_checkpoint, load_images

FREE = ("features", "pooled", "labels")


class Maps:
    """The recipe's maps written out (checked against ``Network.evaluate`` at the fixed point in :func:`check`)."""

    def __init__(self, model: HAMClassifier) -> None:
        c = model.config
        if c.architecture != "conv" or c.hidden:
            raise SystemExit("ham_conv_gap: only the conv recipe without a hidden layer")
        syn = model.network.synapses
        self.conv, self.read = syn[0].weight.detach(), syn[2].weight.detach()
        self.b = {n: model.biases[n].detach() for n in FREE}
        self.k, self.stride, self.pool, self.beta = c.kernel, c.stride, c.pool, c.label_beta

    def drive(self, images: Tensor) -> Tensor:
        """The clamped image's input to the features, with their bias."""
        x = images.reshape(-1, 1, 28, 28).to(self.conv.dtype)
        return F.conv2d(x, self.conv, stride=self.stride, padding=self.k // 2) + self.b["features"]

    def spread(self, y: Tensor) -> Tensor:  # the pooling's adjoint
        p = self.pool
        return y.repeat_interleave(p, 2).repeat_interleave(p, 3) / (p * p)

    def u(self, x: dict[str, Tensor], drive: Tensor, feedback: bool = True) -> dict[str, Tensor]:
        """The inputs ``u(x)`` of the free layers (``feedback=False``: no label feedback into ``pooled``)."""
        gf, gp = F.relu(x["features"]), F.relu(x["pooled"])
        gl = torch.softmax(self.beta * x["labels"], 1)
        down = (gl @ self.read).reshape(gp.shape) if feedback else 0.0
        return {
            "features": drive + self.spread(gp),
            "pooled": F.avg_pool2d(gf, self.pool) + self.b["pooled"] + down,
            "labels": gp.flatten(1) @ self.read.T + self.b["labels"],
        }

    def feedforward(self, images: Tensor) -> dict[str, Tensor]:
        """One bottom-up pass, no feedback (the twin's read-out on the memory's weights)."""
        f = self.drive(images)
        p = F.avg_pool2d(F.relu(f), self.pool) + self.b["pooled"]
        return {"features": f, "pooled": p, "labels": F.relu(p).flatten(1) @ self.read.T + self.b["labels"]}

    def relax(
        self, images: Tensor, dt: float, tol: float, feedback: bool = True, limit: int = 20000
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Exponential Euler from zero to ``max |u - x| <= tol`` per sample: (state, steps per sample, the
        speed's ratio over each sample's last 10 steps, per step)."""
        drive = self.drive(images)
        n = drive.shape[0]
        x = {
            "features": torch.zeros_like(drive),
            "pooled": torch.zeros(n, *drive.shape[1:2], *(s // self.pool for s in drive.shape[2:])),
            "labels": torch.zeros(n, 10),
        }
        x = {k: v.to(drive.dtype) for k, v in x.items()}
        e = math.exp(-dt)
        steps = torch.full((n,), -1, dtype=torch.long)
        history: list[Tensor] = []
        for step in range(limit):
            u = self.u(x, drive, feedback)
            speed = torch.stack([(u[k] - x[k]).flatten(1).abs().amax(1) for k in FREE], 1).amax(1)
            history.append(speed)
            steps[(steps < 0) & (speed <= tol)] = step
            if bool((steps >= 0).all()):
                break
            x = {k: e * x[k] + (1 - e) * u[k] for k in FREE}
        s = torch.stack(history)
        idx = steps.clamp_min(10)
        tail = (s[idx, torch.arange(n)] / s[idx - 10, torch.arange(n)]) ** 0.1
        return x, steps, tail


def load(folder: str) -> HAMClassifier:
    run, _ = load_checkpoint(folder)
    model = run.model
    model.eval()
    return model


def fixed_points(model: HAMClassifier, images: Tensor, batch: int) -> tuple[dict[str, Tensor], list[int]]:
    """The library's strict relaxation (the recorded evaluation's), in minibatches of ``batch``."""
    out: dict[str, list[Tensor]] = {n: [] for n in FREE}
    steps = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            traj = model.settle(images[i : i + batch], None, strict=True)
            for n in FREE:
                out[n].append(traj.states[n])
            steps.append(int(traj.steps.max()))
    return {n: torch.cat(v) for n, v in out.items()}, steps


def check(model: HAMClassifier, maps: Maps, images: Tensor, states: dict[str, Tensor]) -> float:
    """Largest difference between :class:`Maps`' ``u`` and ``Network.evaluate``'s at the given states."""
    full = {"image": images.reshape(-1, 1, 28, 28), **states}
    ev = model.network.evaluate(full, dict(model.biases.items()), model.clamp)
    mine = maps.u(states, maps.drive(images))
    return max(float((ev.u[n].detach() - mine[n]).abs().max()) for n in FREE)


def accuracy_part(model: HAMClassifier, maps: Maps, images: Tensor, labels: Tensor, name: str) -> dict:
    t = time.process_time()
    with torch.no_grad():
        ff = maps.feedforward(images)
        fp, steps = fixed_points(model, images, model.config.batch_size)
        nofb, nofb_steps, _ = maps.relax(images, model.config.dt, model.config.tol, feedback=False)
    mismatch = check(model, maps, images[:256], {n: fp[n][:256] for n in FREE})
    res = {
        "name": name,
        "n": len(labels),
        "feedforward": float((ff["labels"].argmax(1) == labels).float().mean()),
        "fixed_point": float((fp["labels"].argmax(1) == labels).float().mean()),
        "no_label_feedback": float((nofb["labels"].argmax(1) == labels).float().mean()),
        "mean_steps": sum(steps) / len(steps),
        "max_steps": max(steps),
        "no_feedback_max_steps": int(nofb_steps.max()),
        "maps_mismatch": mismatch,
        "cpu_s": time.process_time() - t,
        "ff": ff,
        "fp": fp,
        "nofb": nofb,
        "labels": labels,
    }
    print(
        f"[accuracy] {name} ({res['n']} images): feed-forward {100 * res['feedforward']:.2f}%, fixed point "
        f"{100 * res['fixed_point']:.2f}% (steps per minibatch mean {res['mean_steps']:.0f} / max "
        f"{res['max_steps']}), without the label feedback {100 * res['no_label_feedback']:.2f}% (max steps "
        f"{res['no_feedback_max_steps']}); |u_maps - u_network| {mismatch:.1e}; {res['cpu_s']:.0f} s CPU",
        flush=True,
    )
    return res


def top_eigenvalue(maps: Maps, x: dict[str, Tensor], drive: Tensor, feedback: bool, iters: int) -> Tensor:
    """Per sample, the largest |eigenvalue| of ``J = du/dx`` at ``x`` (power iteration on ``(J^T)^2``)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in x.items()}
    u = maps.u(leaves, drive, feedback)
    outs, ins = [u[k] for k in FREE], [leaves[k] for k in FREE]
    gen = torch.Generator().manual_seed(0)
    v = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in ins]

    def norm(w: list[Tensor]) -> Tensor:
        return torch.sqrt(sum(t.flatten(1).pow(2).sum(1) for t in w))

    def jt(w: list[Tensor]) -> list[Tensor]:
        got = torch.autograd.grad(outs, ins, w, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(i) if g is None else g for i, g in zip(ins, got, strict=True)]

    lam2 = torch.zeros(drive.shape[0], dtype=drive.dtype)
    for _ in range(iters):
        nv = norm(v).clamp_min(1e-30)
        v = [t / nv.view(-1, *([1] * (t.dim() - 1))) for t in v]
        w = jt(jt(v))
        lam2 = sum((a * b).flatten(1).sum(1) for a, b in zip(v, w, strict=True))
        v = w
    return lam2.clamp_min(0).sqrt()


def gain_part(model: HAMClassifier, maps: Maps, images: Tensor, name: str, iters: int) -> dict:
    c = model.config
    t = time.process_time()
    with torch.no_grad():
        x, steps, tail = maps.relax(images, c.dt, c.tol)
        probs = torch.softmax(c.label_beta * x["labels"], 1).amax(1)
    drive = maps.drive(images)
    lam = top_eigenvalue(maps, x, drive, True, iters)
    lam0 = top_eigenvalue(maps, x, drive, False, iters)
    e = math.exp(-c.dt)
    rate = e + (1 - e) * lam
    q = torch.tensor([0.5, 0.9, 1.0], dtype=lam.dtype)

    def qs(v: Tensor) -> str:
        return " / ".join(f"{float(a):.3f}" for a in torch.quantile(v.double(), q.double()))

    corr = float(torch.corrcoef(torch.stack([lam.double(), steps.double()]))[0, 1])
    gap = (1 - lam).clamp_min(1e-6)
    corr_log = float(torch.corrcoef(torch.stack([(-gap.log()).double(), steps.double()]))[0, 1])
    confident = float(torch.corrcoef(torch.stack([lam.double(), probs.double()]))[0, 1])
    print(
        f"[gain] {name} ({len(images)} images; median / 90% / max): lambda {qs(lam)}; without the label feedback "
        f"{qs(lam0)}; steps to settle {qs(steps.double())}; predicted rate per step e^-dt + (1 - e^-dt) lambda "
        f"{qs(rate)}, measured over each sample's last 10 steps {qs(tail)}; corr(lambda, steps) {corr:.2f}, "
        f"corr(-log(1 - lambda), steps) {corr_log:.2f}, corr(lambda, top label probability) {confident:.2f}; "
        f"{time.process_time() - t:.0f} s CPU",
        flush=True,
    )
    return {"lambda": lam, "lambda_nofb": lam0, "steps": steps, "tail": tail, "rate": rate}


def flat_grad(model: HAMClassifier) -> Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def gradient(
    model: HAMClassifier, images: Tensor, labels: Tensor, tol: float, gradient_mode: object, t_max: float
) -> Tensor:
    model.zero_grad()
    c = model.config
    traj = relax(
        model.network,
        model.start(images.to(next(model.parameters()).dtype)),
        clamp=model.clamp,
        inputs=dict(model.biases.items()),
        method=c.method,
        dt=c.dt,
        tol=tol,
        t_max=t_max,
        gradient=gradient_mode,
        record=False,
    )
    F.cross_entropy(traj.states["labels"], labels).backward()
    return flat_grad(model).double()


def gradient_part(folder: str, images: Tensor, labels: Tensor, batch: int, unrolled: int) -> None:
    """Implicit gradients at several settings against the float64 reference, per minibatch of ``batch``; the
    unrolled gradient (its memory grows with the steps) on the first ``unrolled`` images of each."""
    c32 = load(folder)
    c64 = load(folder).double()
    c = c32.config
    parts = [p.numel() for p in c32.parameters()]
    names = [n.split(".")[-2] if "synapses" in n else n.split(".")[-1] for n, _ in c32.named_parameters()]
    names = [{"0": "conv", "2": "read-out"}.get(n, n) for n in names]

    def report(i: int, n: int, label: str, g: Tensor, ref: Tensor) -> None:
        cos = float(F.cosine_similarity(g, ref, 0))
        rel = float((g - ref).norm() / ref.norm())
        per = ", ".join(
            f"{n_} {float((a - b).norm() / b.norm()):.1e}"
            for n_, a, b in zip(names, g.split(parts), ref.split(parts), strict=True)
        )
        print(
            f"[gradient] minibatch {i} ({n} training images): {label}: cosine {cos:.6f}, relative error "
            f"{rel:.2e} ({per})",
            flush=True,
        )

    refs: list[Tensor] = []
    errors: dict[str, list[Tensor]] = {}
    for i in range(0, len(images), batch):
        x, y = images[i : i + batch], labels[i : i + batch]
        t = time.process_time()
        ref = gradient(c64, x.double(), y, 1e-8, Implicit(tol=1e-10, max_steps=5000), 1e5)
        rows = {
            f"recipe (float32, tol {c.tol:g}, adjoint {c.adjoint_tol:g})": (
                c32,
                x,
                c.tol,
                Implicit(tol=c.adjoint_tol),
            ),
            f"tight adjoint (float32, tol {c.tol:g}, adjoint 1e-5)": (
                c32,
                x,
                c.tol,
                Implicit(tol=1e-5, max_steps=2000),
            ),
            f"float64 (tol {c.tol:g}, adjoint {c.adjoint_tol:g})": (
                c64,
                x.double(),
                c.tol,
                Implicit(tol=c.adjoint_tol),
            ),
            f"float32, tol 1e-4, adjoint {c.adjoint_tol:g}": (c32, x, 1e-4, Implicit(tol=c.adjoint_tol)),
            f"float32, tol 1e-5, adjoint {c.adjoint_tol:g}": (c32, x, 1e-5, Implicit(tol=c.adjoint_tol)),
        }
        refs.append(ref)
        for label, (m, xx, tol, mode) in rows.items():
            g = gradient(m, xx, y, tol, mode, 1e5)
            errors.setdefault(label, []).append(g - ref)
            report(i // batch, len(y), label, g, ref)
        if unrolled and i == 0:
            xs, ys = x[:unrolled].double(), y[:unrolled]
            sub = gradient(c64, xs, ys, 1e-8, Implicit(tol=1e-10, max_steps=5000), 1e5)
            report(
                i // batch,
                len(ys),
                "unrolled (float64, tol 1e-8)",
                gradient(c64, xs, ys, 1e-8, "unrolled", 1e5),
                sub,
            )
            rec = gradient(c32, x[:unrolled], ys, c.tol, Implicit(tol=c.adjoint_tol), 1e5)
            report(i // batch, len(ys), "recipe on the same images", rec, sub)
        print(f"[gradient] minibatch {i // batch}: {time.process_time() - t:.0f} s CPU", flush=True)
    # a bias adds up over minibatches, noise averages out: the error of the mean gradient, and how the error
    # vectors of different minibatches line up
    k = len(refs)
    mean_ref = torch.stack(refs).mean(0)
    noise = sum(float(F.cosine_similarity(refs[a], refs[b], 0)) for a in range(k) for b in range(a)) / max(
        1, k * (k - 1) // 2
    )
    print(f"[gradient] reference gradients of different minibatches: mean cosine {noise:.3f}", flush=True)
    for label, errs in errors.items():
        mean_err = torch.stack(errs).mean(0)
        align = sum(
            float(F.cosine_similarity(errs[a], errs[b], 0)) for a in range(k) for b in range(a)
        ) / max(1, k * (k - 1) // 2)
        print(
            f"[gradient] {label}: over {k} minibatches the mean gradient's relative error "
            f"{float(mean_err.norm() / mean_ref.norm()):.2e} (single minibatches "
            f"{sum(float(e.norm() / r.norm()) for e, r in zip(errs, refs, strict=True)) / k:.2e}); error vectors' "
            f"mean cosine {align:.3f}; cosine of the mean error with the mean gradient "
            f"{float(F.cosine_similarity(mean_err, mean_ref, 0)):.3f}",
            flush=True,
        )


def sensitivity_part(
    model: HAMClassifier, images: Tensor, labels: Tensor, train_x: Tensor, train_y: Tensor, lrs: list[float]
) -> None:
    """How far one optimiser step moves the answers: Adam's first step (``lr * sign(gradient)``, the recipe's
    gradient on one training minibatch) from the checkpoint, read feed-forward and at the fixed point."""
    c = model.config
    x0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad()
    F.cross_entropy(model.logits(train_x, c.gradient), train_y).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}

    def read() -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            ff = Maps(model).feedforward(images)["labels"]
            fp = fixed_points(model, images, c.batch_size)[0]["labels"]
        return ff - ff.mean(1, keepdim=True), fp - fp.mean(1, keepdim=True)

    ff0, fp0 = read()
    for lr in lrs:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(x0[n] - lr * grads[n].sign())
        ff, fp = read()
        dff, dfp = (ff - ff0).abs().amax(1), (fp - fp0).abs().amax(1)
        ratio = dfp / dff.clamp_min(1e-12)
        q = torch.tensor([0.5, 0.9, 1.0], dtype=torch.float64)

        def qs(v: Tensor, q: Tensor = q) -> str:
            return " / ".join(f"{float(a):.3g}" for a in torch.quantile(v.double(), q))

        print(
            f"[sensitivity] one step at lr {lr:g} ({len(images)} test images; median / 90% / max): the largest change "
            f"of a logit (less the mean) feed-forward {qs(dff)}, at the fixed point {qs(dfp)}, ratio {qs(ratio)}; "
            f"answers changed: feed-forward {int((ff.argmax(1) != ff0.argmax(1)).sum())}, fixed point "
            f"{int((fp.argmax(1) != fp0.argmax(1)).sum())}; accuracy feed-forward "
            f"{100 * float((ff0.argmax(1) == labels).float().mean()):.2f} -> "
            f"{100 * float((ff.argmax(1) == labels).float().mean()):.2f}%, fixed point "
            f"{100 * float((fp0.argmax(1) == labels).float().mean()):.2f} -> "
            f"{100 * float((fp.argmax(1) == labels).float().mean()):.2f}%",
            flush=True,
        )
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(x0[n])


def flips_part(res: dict) -> None:
    y = res["labels"]
    ff, fp, nofb = res["ff"], res["fp"], res["nofb"]
    a_ff, a_fp, a_no = (s["labels"].argmax(1) for s in (ff, fp, nofb))
    lost = (a_ff == y) & (a_fp != y)
    won = (a_ff != y) & (a_fp == y)
    moved = (F.relu(fp["pooled"]) - F.relu(ff["pooled"])).flatten(1).norm(dim=1) / F.relu(
        ff["pooled"]
    ).flatten(1).norm(dim=1).clamp_min(1e-12)
    top2 = ff["labels"].topk(2, 1).values
    margin = top2[:, 0] - top2[:, 1]
    probs = torch.softmax(fp["labels"], 1)
    groups = {"all": torch.ones_like(lost), "lost": lost, "won": won, "both wrong": (a_ff != y) & (a_fp != y)}
    print(
        f"[flips] {res['name']}: the fixed point loses {int(lost.sum())} images the feed-forward read gets right "
        f"and wins {int(won.sum())} (net {int(won.sum()) - int(lost.sum())}); answers that differ: "
        f"{int((a_ff != a_fp).sum())}",
        flush=True,
    )
    for g, m in groups.items():
        if not bool(m.any()):
            continue

        def med(v: Tensor, m: Tensor = m) -> float:
            return float(v[m].median())

        same_no = float((a_no[m] == a_ff[m]).float().mean())
        to_second = float((a_fp[m] == ff["labels"][m].topk(2, 1).indices[:, 1]).float().mean())
        print(
            f"[flips]   {g} ({int(m.sum())}): |g_pooled(fixed point) - g_pooled(feed-forward)| / |g_pooled(ff)| "
            f"median {med(moved):.3f}; feed-forward logit margin median {med(margin):.2f}; top label probability "
            f"at the fixed point median {med(probs.amax(1)):.3f}; without the label feedback the answer is the "
            f"feed-forward one for {100 * same_no:.1f}%; the fixed point's answer is the feed-forward runner-up "
            f"for {100 * to_second:.1f}%",
            flush=True,
        )
    # how the label feedback changes the logits: the fixed point against the no-label-feedback fixed point
    shift = fp["labels"] - nofb["labels"]
    toward = (shift.gather(1, a_fp[:, None]) - shift.mean(1, keepdim=True)).squeeze(1)
    print(
        f"[flips]   the label feedback raises the fixed point's answer's logit (less the mean shift) by median "
        f"{float(toward.median()):.2f} over all images, {float(toward[lost].median()) if lost.any() else 0:.2f} "
        f"over the lost ones",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a conv run folder (checkpoint.safetensors)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--size", type=int, default=10000, help="test images (and training images) to relax")
    parser.add_argument("--gain-images", type=int, default=256)
    parser.add_argument("--grad-images", type=int, default=512, help="training images for the gradient part")
    parser.add_argument("--grad-batch", type=int, default=128, help="the training's minibatch")
    parser.add_argument("--unrolled", type=int, default=8, help="images of each minibatch also unrolled")
    parser.add_argument("--sensitivity-images", type=int, default=1024)
    parser.add_argument("--power-iterations", type=int, default=200)
    parser.add_argument("--parts", default="accuracy,train,flips,gain,sensitivity,gradient")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    model = load(args.run)
    maps = Maps(model)
    c = model.config
    data = load_images(c.dataset, data_dir=args.data_dir)
    print(f"run {args.run}: {c.channels} channels, dt {c.dt:g}, tol {c.tol:g}, adjoint_tol {c.adjoint_tol:g}")
    test_x, test_y = data.test_images[: args.size], data.test_labels[: args.size]
    if "accuracy" in parts or "flips" in parts:
        res = accuracy_part(model, maps, test_x, test_y, "test")
        if "train" in parts:
            accuracy_part(
                model, maps, data.train_images[: args.size], data.train_labels[: args.size], "train"
            )
        if "flips" in parts:
            flips_part(res)
    if "gain" in parts:
        gain_part(model, maps, test_x[: args.gain_images], "test", args.power_iterations)
    if "sensitivity" in parts:
        n = args.sensitivity_images
        sensitivity_part(
            model, test_x[:n], test_y[:n], data.train_images[:128], data.train_labels[:128], [0.002, 0.0005]
        )
    if "gradient" in parts:
        n = args.grad_images
        gradient_part(args.run, data.train_images[:n], data.train_labels[:n], args.grad_batch, args.unrolled)


if __name__ == "__main__":
    main()
