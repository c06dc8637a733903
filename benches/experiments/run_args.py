"""The command line shared by the experiment scripts that probe a trained network:
``SCRIPT RUN/model.pt [cifar10|fashion-mnist|mnist] [DATA_DIR]``.  Loads the checkpoint and the
training file, and picks the validation images exactly as ``difflogic train`` does
(``val_size_for`` and ``SPLIT_SEED``), so a probe never measures on training images."""
from types import SimpleNamespace

from difflogic import checkpoint, data


def load_run(argv):
    """argv -> namespace(model, name, root, x, y, val): the network (eval mode), the canonical
    dataset name, the data folder (None = the default places), the training file's images and
    labels, and the indices of its validation split."""
    name = data.canonical_name(argv[2] if len(argv) > 2 else "cifar10")
    root = argv[3] if len(argv) > 3 else None
    x, y = data.load_dataset(name, root, "train")
    _, val = data.train_val_split(len(y), data.DATASET_INFO[name].val_size_for(len(y)),
                                  seed=data.SPLIT_SEED)
    model = checkpoint.load_model(argv[1])
    other = sorted({m.parametrization for m in model.modules()
                    if getattr(m, "parametrization", "softmax") != "softmax"})
    if other:  # the probes read softmax(weight) over the 16 gates
        raise SystemExit(f"{argv[1]}: gate layers with the {', '.join(other)} parametrization; "
                         "these probes read the 16 gate logits of softmax-parametrized layers only")
    return SimpleNamespace(model=model, name=name, root=root, x=x, y=y, val=val)
