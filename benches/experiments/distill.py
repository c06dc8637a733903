"""Experiment, not part of the library (benches/RESULTS.md, Fashion-MNIST variants): knowledge
distillation from a small CNN teacher.  Trains the teacher on the same 50k/10k Fashion-MNIST
split, then runs the `difflogic` CLI with the loss (1-A) CE(y) + A T^2 KL(teacher/T || student/T)
(monkeypatched; the teacher runs on each training batch).

    KD_A=0.5 KD_T=2 TEACHER_EPOCHS=3 python benches/experiments/distill.py train \
        --dataset fashion-mnist --model fmnist-small --threads 1 --out runs/distill
"""
import os, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from difflogic import data, models
A = float(os.environ.get("KD_A", "0.5")); T = float(os.environ.get("KD_T", "2"))
EP = int(os.environ.get("TEACHER_EPOCHS", "3"))
torch.manual_seed(0)
x, y = data.load_dataset("fashion-mnist", None, "train")
tr, va = data.train_val_split(len(y), 10000, seed=0)
X = torch.from_numpy(x.astype(np.float32) / 255.0); Y = torch.from_numpy(y.astype(np.int64))
teacher = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 49, 10))
opt = torch.optim.Adam(teacher.parameters(), 1e-3)
t0 = time.time()
for ep in range(EP):
    teacher.train()
    perm = torch.from_numpy(tr)[torch.randperm(len(tr))]
    for i in range(0, len(perm), 128):
        b = perm[i:i + 128]
        loss = F.cross_entropy(teacher(X[b]), Y[b]); opt.zero_grad(); loss.backward(); opt.step()
    teacher.eval()
    with torch.no_grad():
        acc = sum(int((teacher(X[va[i:i+1000]]).argmax(1) == Y[va[i:i+1000]]).sum()) for i in range(0, len(va), 1000)) / len(va)
    print(f"teacher epoch {ep+1}: val {100*acc:.2f}% ({time.time()-t0:.0f}s)", file=sys.stderr, flush=True)
teacher.eval()
for p in teacher.parameters(): p.requires_grad_(False)
state = {}
orig_fwd = models.LogicNet.forward
def fwd(self, inp):
    if self.training: state["x"] = inp
    return orig_fwd(self, inp)
models.LogicNet.forward = fwd
orig_ce = F.cross_entropy
def ce(logits, target, *a, **k):
    base = orig_ce(logits, target, *a, **k)
    xin = state.pop("x", None)
    if xin is None or not logits.requires_grad:
        return base
    with torch.no_grad():
        tl = teacher(xin)
    kd = F.kl_div(F.log_softmax(logits / T, -1), F.softmax(tl / T, -1), reduction="batchmean") * T * T
    return (1 - A) * base + A * kd
torch.nn.functional.cross_entropy = ce
from difflogic.cli import main
sys.exit(main(sys.argv[1:]))
