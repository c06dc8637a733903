"""GPU diagnostics, one call (needs CUDA + CuPy; run from the checkout root):

    PYTHONPATH=. python3 benches/experiments/gpu_diag.py

section0: the cuda-tiny net of tests/test_cuda.py, prefix by prefix: the CPU eval model vs the
GPU eval model (where do they first differ?), and the whole net vs PackedNet (the cuda-packed
back end); section1: two uninterrupted tiny
GPU training runs, same seed (is GPU training deterministic?); section2: the same conv / dense
backward three times (which kernel is not?); section3: LogicTreeNet-S step throughput at
batch 32-256.  Figures from an H200 in benches/RESULTS.md (CUDA section, 2026-12-04).
"""
import copy, sys, time, json
import torch
sys.path.insert(0, "tests")
import difflogic as dl
from difflogic.backends.cuda_packed import PackedNet
import test_cuda as tc

import traceback
def section0():
    torch.manual_seed(0)
    model = tc.tiny_net().eval()
    x = torch.rand(37, 2, 8, 8)
    layers = list(model.children())
    gpu = copy.deepcopy(model).cuda().eval()
    glayers = list(gpu.children())
    print("layers:", [type(m).__name__ for m in layers])
    with torch.no_grad():
        for i in range(1, len(layers) + 1):
            c = torch.nn.Sequential(*layers[:i]).eval()
            g = torch.nn.Sequential(*glayers[:i]).eval()
            rc = c(x)
            rg = g(x.cuda()).cpu()
            line = f"prefix {i} ({type(layers[i-1]).__name__}): cpu {rc.dtype} {tuple(rc.shape)}"
            line += f" | gpu-eval equal {torch.equal(rc, rg)} ndiff {(rc != rg).sum().item()}"
            if i == len(layers):   # PackedNet runs a netlist: whole networks (with GroupSum) only
                pn = PackedNet(gpu, word_bits=32)
                rp = pn(x.cuda()).cpu()
                cnt = pn.counts(x.cuda()).cpu()
                line += f" | packed equal {torch.equal(rc, rp)} ndiff {(rc != rp).sum().item()} maxabs {(rc-rp).abs().max().item()}"
                line += f" | counts*1 vs ref*3 equal {torch.equal(cnt.float(), rc*3.0)}; cnt/3 == rc {torch.equal(cnt.float()/3.0, rc)}"
                d = (rc != rp).nonzero()[:5]
                print("diff idx", d.tolist(), "ref", [rc[tuple(j)].item() for j in d], "packed", [rp[tuple(j)].item() for j in d],
                      "counts", [cnt[tuple(j)].item() for j in d])
                print("tau", model[-1].tau if hasattr(model, "__getitem__") else None)
            print(line, flush=True)


def section1():
    # determinism: the same tiny training twice, uninterrupted, on the GPU
    import tempfile, pathlib
    from difflogic import data
    from difflogic.training import TrainOptions, train
    from difflogic.checkpoint import load_checkpoint
    import test_train as tt
    tmp = pathlib.Path(tempfile.mkdtemp())
    fm = data.write_fake_idx(tmp / "fm", n_train=120, n_test=40)
    for extra in (dict(gumbel=0.5, ste_from=0.5), dict()):
        common = dict(dataset="mnist", data_dir=str(fm), model_config=tt.TINY, steps=60, eval_every=20,
                      seed=5, schedule="cosine", progress="none", device="cuda", **extra)
        tag = "gumbel+ste" if extra else "plain"
        sd = []
        for r in range(2):
            train(TrainOptions(out=str(tmp / f"{tag}{r}"), **common))
            sd.append(load_checkpoint(tmp / f"{tag}{r}" / "last.pt")["state_dict"])
        diff = {k: (sd[0][k] - sd[1][k]).abs().max().item() for k in sd[0] if sd[0][k].is_floating_point() and not torch.equal(sd[0][k], sd[1][k])}
        print(f"two uninterrupted GPU runs ({tag}): differing tensors {diff}", flush=True)


def section2():
    # kernel level: the same backward twice
    torch.manual_seed(1)
    for name, layer, shape in [
            ("conv d3 pool2", dl.LogicConv2d(16, 32, 3, depth=3, padding=1, channels_per_tree=2, or_pool=2), (64, 16, 16, 16)),
            ("dense", dl.LogicDense(4096, 2048), (256, 4096))]:
        layer = layer.cuda().train()
        xin = torch.rand(*shape, device="cuda")
        gs = []
        for r in range(3):
            layer.zero_grad(set_to_none=True)
            xi = xin.clone().requires_grad_()
            y = layer(xi)
            torch.manual_seed(2)
            y.backward(torch.randn_like(y))
            gs.append((layer.weight.grad.clone(), xi.grad.clone()))
        print(f"{name}: weight grad bitwise equal across 3 runs {[torch.equal(gs[0][0], g[0]) for g in gs[1:]]}, "
              f"x grad {[torch.equal(gs[0][1], g[1]) for g in gs[1:]]}, max |dw| {max((gs[0][0]-g[0]).abs().max().item() for g in gs[1:])}", flush=True)


def section3():
    # step throughput of the CPU recipe's batch sizes on the GPU
    sys.path.insert(0, "benches")
    import bench_cuda_train as tct
    for b in (32, 64, 128, 256):
        r = tct.bench_train("cifar10-s", "auto", b, 30)
        print(json.dumps(r), flush=True)

for f in (section0, section1, section2, section3):
    t = time.time()
    try:
        f()
    except Exception:
        traceback.print_exc()
    print(f'{f.__name__}: {time.time() - t:.1f} s', flush=True)
