"""A deliberately straightforward DVP-cls training loop, organised like the reference implementations.

It is the baseline of the end-to-end benchmark (benchmarks/bench.py), NOT part of the toolkit: every
epoch decodes each full-size image again in one thread (DataLoader without workers), each of the v
prompts makes its own image-encoder call, the PRM statistics are counted sample by sample in Python,
and the test set is evaluated after every epoch (keeping the best test accuracy, as the reference does).
Same protocol as the toolkit's DVP_CLS: padding prompts at 192 inside 224, SGD lr 40 momentum 0.9,
cosine per iteration, epoch 0 only collects PRM statistics, fp16 autocast for CUDA training steps.

    python benchmarks/reference_loop.py --split split.json --descriptions des.json --epochs 20
"""
import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.cluster import KMeans
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backbones import load_clip  # noqa: E402


class ImageList(Dataset):
    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        img = Image.open(path).convert("RGB")
        return self.transform(img), label


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", required=True, help="json {train: [[path, label]], test: [...], classnames: [...]}")
    p.add_argument("--descriptions", required=True, help="the DesAttr json {class: [sentences]}")
    p.add_argument("--backbone", default="test-tiny")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--v", type=int, default=3)
    p.add_argument("--m", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    t_start = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    with open(args.split) as f:
        split = json.load(f)
    classnames = split["classnames"]
    bicubic = T.InterpolationMode.BICUBIC
    train_tf = T.Compose([T.Resize(192, interpolation=bicubic), T.RandomResizedCrop(192, interpolation=bicubic),
                          T.RandomHorizontalFlip(), T.ToTensor()])
    test_tf = T.Compose([T.Resize(192, interpolation=bicubic), T.CenterCrop(192), T.ToTensor()])
    train_loader = DataLoader(ImageList(split["train"], train_tf), batch_size=args.batch_size, shuffle=True,
                              num_workers=0)
    test_loader = DataLoader(ImageList(split["test"], test_tf), batch_size=args.batch_size, shuffle=False,
                             num_workers=0)

    clip = load_clip(args.backbone, device, pretrained=False)  # test-tiny, or an architecture with random weights
    model, tokenizer = clip.model, clip.tokenizer
    mean = torch.tensor(clip.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(clip.std, device=device).view(1, 3, 1, 1)
    scale = model.logit_scale.exp().item()

    # descriptions: m per class, embedded once, clustered into v groups
    with open(args.descriptions) as f:
        des = json.load(f)
    texts = []
    for c in classnames:
        sentences = [s for s in des[c] if len(s) >= 20]
        texts += random.sample(sentences, args.m) if len(sentences) > args.m else random.choices(sentences, k=args.m)
    with torch.no_grad():
        emb = torch.cat([model.encode_text(tokenizer(texts[i:i + 256]).to(device)).float()
                         for i in range(0, len(texts), 256)])
        emb = emb / emb.norm(dim=-1, keepdim=True)
    groups = KMeans(n_clusters=args.v, n_init=1, random_state=0).fit_predict(emb.cpu().numpy())
    members = [torch.tensor(np.where(groups == i)[0], device=device) for i in range(args.v)]

    n_cls, m = len(classnames), args.m
    omega = torch.zeros(n_cls * m, n_cls, device=device)
    for c in range(n_cls):
        omega[c * m:(c + 1) * m, c] = 1.0 / m
    mask = torch.ones(1, 3, 224, 224, device=device)
    mask[:, :, 16:208, 16:208] = 0
    prompts = [torch.nn.Parameter(torch.zeros(3, 224, 224, device=device)) for _ in range(args.v)]
    optims = [torch.optim.SGD([d], lr=40.0, momentum=0.9) for d in prompts]
    iters = args.epochs * len(train_loader)
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=iters) for o in optims]

    def description_logits(x):
        z = torch.zeros(x.shape[0], n_cls * m, device=device)
        padded = F.pad(x, (16, 16, 16, 16))
        for i in range(args.v):  # one encoder call per prompt
            img = (padded + torch.sigmoid(prompts[i]) * mask - mean) / std
            feat = model.encode_image(img)
            feat = feat / feat.norm(dim=-1, keepdim=True)
            sims = (scale * feat.float() @ emb.t()).float()  # autocast makes the product fp16
            z[:, members[i]] = sims[:, members[i]]
        return z

    best, accs, train_s, test_s = 0.0, [], 0.0, 0.0
    use_amp = device.type == "cuda"
    for epoch in range(args.epochs):
        t0 = time.time()
        counts = torch.zeros(n_cls, m)
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            if epoch == 0:
                with torch.no_grad():
                    z = description_logits(x)
            else:
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    z = description_logits(x)
                    loss = F.cross_entropy(z @ omega, y)
                for o in optims:
                    o.zero_grad()
                loss.backward()
                for o, s in zip(optims, scheds, strict=False):
                    o.step()
                    s.step()
            zd = z.detach().float().cpu()
            for b in range(x.shape[0]):  # PRM statistics, one sample at a time
                c = int(y[b])
                for j in torch.topk(zd[b, c * m:(c + 1) * m], 3).indices.tolist():
                    counts[c, j] += 1
        rows = counts.sum(1, keepdim=True)
        weight = torch.where(rows > 0, counts / rows.clamp_min(1), torch.full_like(counts, 1.0 / m))
        omega.zero_()
        for c in range(n_cls):
            omega[c * m:(c + 1) * m, c] = weight[c].to(device)
        train_s += time.time() - t0
        if epoch == 0:
            continue
        t0 = time.time()  # test after every epoch, keep the best (test-set selection, as the reference)
        correct = total = 0
        with torch.no_grad():
            for x, y in test_loader:
                pred = (description_logits(x.to(device)) @ omega).argmax(1).cpu()
                correct += int((pred == y).sum())
                total += len(y)
        accs.append(100.0 * correct / total)
        best = max(best, accs[-1])
        test_s += time.time() - t0
        print(f"epoch {epoch + 1}/{args.epochs} acc {accs[-1]:.1f} best {best:.1f}", flush=True)
    out = {"wall_s": time.time() - t_start, "train_s": train_s, "test_s": test_s, "last_accuracy": accs[-1] if accs
           else None, "best_accuracy": best, "epochs": args.epochs}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
