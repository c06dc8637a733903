"""Experiment, not part of the library (benches/RESULTS.md): fine-tune a trained checkpoint for a few epochs while
annealing the gate softmax sharpness (logits x1 -> xSMAX), to close the relaxed/hard gap.

    python benches/experiments/harden_finetune.py CKPT DATASET DATA_DIR EPOCHS LR SMAX AUGMENT OUT.pt [LAYERS]

AUGMENT: 0 = none, 1 = flips + crops (as `difflogic train --augment`), flips = flips only
(as `--augment --crop-padding 0`).

SMAX = 0: straight-through fine-tuning instead (argmax gates forward, relaxed gradient:
difflogic.set_straight_through) at a constant sharpness.  LAYERS (with SMAX = 0): comma-separated
indices among the gate layers (0 = the first conv layer) that train straight-through, the others
staying relaxed; default all (layer_gap.py shows where the gap sits).

(DATA_DIR "" = the default location; batch 128; writes the best-validation state_dict to OUT.pt)"""
import sys, time, math
import torch
from difflogic import data, layers as L, set_logit_scale, set_straight_through
from difflogic.checkpoint import load_checkpoint, model_from_checkpoint
from difflogic.train import accuracy, make_optimizer, keep_freed_memory
ck, ds, dd, ep, lr, smax, aug, out = sys.argv[1:9]
dd = dd or None
flips_only = aug == "flips"
ep, lr, smax, aug = float(ep), float(lr), float(smax), flips_only or bool(int(aug))
only = [int(i) for i in sys.argv[9].split(",")] if len(sys.argv) > 9 else None
keep_freed_memory()
model = model_from_checkpoint(load_checkpoint(ck), ck)
x, y = data.load_dataset(ds, dd, "train"); xt, yt = data.load_dataset(ds, dd, "test")
info = data.DATASET_INFO[data.canonical_name(ds)]
tr, va = data.train_val_split(len(y), info.val_size, seed=0)
loader = data.BatchLoader(x, y, 128, shuffle=True, seed=7, augment=aug, indices=tr,
                          crop_padding=0 if flips_only else info.crop_padding)  # as difflogic.train
total = int(ep * len(loader)); opt = make_optimizer(model, lr, 0.0)
model.train()
set_straight_through(model, smax == 0 and only is None)
if smax == 0 and only is not None:
    gate_layers = [m for m in model.modules() if isinstance(m, L.GateLayer)]
    for i in only:
        gate_layers[i].straight_through = True
v0 = accuracy(model, x, y, hard=True, indices=va); print(f"start: val hard {100*v0:.2f}%", flush=True)
best = (v0, -1); torch.save(model.state_dict(), out)
t0 = time.time()
for step, (xb, yb) in enumerate(loader.steps(total)):
    u = step / total
    s = 1 + (smax - 1) * u if smax else 1.0
    set_logit_scale(model, s)  # the layers' own sharpness: softmax logits or input-wise entries
    for g in opt.param_groups: g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * u))
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    opt.zero_grad(); loss.backward(); opt.step()
    if (step + 1) % max(1, total // 5) == 0 or step + 1 == total:
        v = accuracy(model, x, y, hard=True, indices=va); vr = accuracy(model, x, y, hard=False, indices=va)
        print(f"step {step+1}/{total} s={s:.2f} loss {loss.item():.4f} val hard {100*v:.2f}% relaxed {100*vr:.2f}% ({time.time()-t0:.0f}s)", flush=True)
        if v > best[0]:
            best = (v, step + 1); torch.save(model.state_dict(), out)
model.load_state_dict(torch.load(out))
print(f"best val hard {100*best[0]:.2f}% at step {best[1]}; test hard {100*accuracy(model, xt, yt, hard=True):.2f}%", flush=True)
