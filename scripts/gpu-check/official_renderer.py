#!/usr/bin/env python3
"""Speed (and correctness) baseline of the *official* IP_LAP renderer in PyTorch.

What it measures
  1. --golden DIR: builds the official ``Renderer`` with the reference formula
     weights (shared/docs/reference-weights.md), runs the golden inputs and prints
     the max abs difference of generated_face / wrapped_ref (and the two discarded
     perceptual losses) against the golden outputs.  A small fp32 difference
     (~1e-6) proves the script built the right network with the right weights, so
     the timings below are those of the real official network.
  2. Timing of one rendered frame exactly as inference_single.py does it: B=1,
     ``renderer(face, target_sketches, refs, ref_sketches, mel)`` under
     torch.no_grad() in eval mode, *including* the two VGG19 perceptual losses the
     official forward computes and throws away ("official"), and the same forward
     with the VGG losses replaced by zeros ("no-vgg", the useful part).  Median
     seconds per frame and frames/s for every --references N, in strict fp32
     (TF32 off), TF32 (cuDNN + matmul) and fp16 autocast (CUDA only).
     cudnn.benchmark stays at its default (off), as in the official script.
  It exists so the Rust port's speed can be compared with the original network on
  the same GPU, without shipping (or copying) any official code in our repository.

Official files needed (IP_LAP @ 9b9dc03f0e90b10b92c904b202443c160afe7c45), copy
into DIR keeping the path:
    models/video_renderer.py
That is all: the file is loaded by path, so models/__init__.py (which imports
librosa/lws/scipy via models/audio.py) is not needed.  Its only non-torch import,
torchvision, is used solely for ``torchvision.models.vgg19(pretrained=True)``
(which would download ImageNet weights); a stub that builds the same VGG19
``features`` layers is injected, since every weight is overwritten by the formula.
Constructor: ``Renderer()`` without arguments, as in inference_single.py.

Usage: official_renderer.py --official DIR [--device cuda|cpu] [--references 25
  --references 5 ...] [--iterations 20] [--warmup N] [--modes fp32,tf32,fp16]
  [--golden DIR] [--json]     (needs only torch + numpy)
"""
import argparse, contextlib, importlib.util, io, json, os, statistics, sys, time, types, warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")  # grid_sample/interpolate align_corners and TF32 API chatter


def load_official(root):
    """Import models/video_renderer.py by path with a torchvision stub (see docstring)."""
    path = next((p for p in (os.path.join(root, "models", "video_renderer.py"),
                             os.path.join(root, "video_renderer.py")) if os.path.isfile(p)), None)
    if path is None:
        sys.exit(f"models/video_renderer.py not found under {root}")

    def vgg19(pretrained=False, **_):  # same layer indices as torchvision's vgg19().features
        layers, cin = [], 3
        for v in [64, 64, "M", 128, 128, "M"] + [256] * 4 + ["M"] + ([512] * 4 + ["M"]) * 2:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        return types.SimpleNamespace(features=nn.Sequential(*layers))

    stub = types.ModuleType("torchvision")
    stub.models = types.SimpleNamespace(vgg19=vgg19)
    saved = sys.modules.get("torchvision")
    sys.modules["torchvision"] = stub  # only while the official module executes its imports
    try:
        spec = importlib.util.spec_from_file_location("iplap_official_video_renderer", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        if saved is None:
            del sys.modules["torchvision"]
        else:
            sys.modules["torchvision"] = saved
    return mod, path


# ---- reference formula weights (reference-weights.md §1-2), vectorised ------------
U32 = np.uint32


def fnv1a32(s):
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def formula(name, numel, offset, scale):
    with np.errstate(over="ignore"):  # uint32 arithmetic is meant to wrap mod 2^32
        z = U32(fnv1a32(name)) + np.arange(numel, dtype=U32) * U32(0x9E3779B9)
        z ^= z >> U32(16); z *= U32(0x85EBCA6B)
        z ^= z >> U32(13); z *= U32(0xC2B2AE35)
        z ^= z >> U32(16)
    r = (z >> U32(8)).astype(np.float64) / 8388608.0 - 1.0
    return (offset + scale * r).astype(np.float32)  # float64 multiply, add; one rounding


def reference_state_dict(model):
    out = {}
    for name, t in model.state_dict().items():
        shape, n = tuple(t.shape), t.numel()
        if name.endswith(".num_batches_tracked"):
            out[name] = torch.zeros_like(t); continue
        if name.endswith(".pe"):  # keep the constructor's sinusoid (none in Renderer)
            out[name] = t.clone(); continue
        if name.endswith(".running_mean"):
            off, sc = 0.0, 0.1
        elif name.endswith(".running_var"):
            off, sc = 1.0, 0.5
        elif name.endswith("modality.weight"):
            off, sc = 0.0, 1.0
        elif len(shape) >= 2:
            off, sc = 0.0, float(np.sqrt(3.0 / (n // shape[0])))
        elif len(shape) == 1 and name.endswith(".weight"):
            off, sc = 1.0, 0.25
        elif len(shape) == 1 and name.endswith("bias"):
            off, sc = 0.0, 0.1
        else:
            raise SystemExit(f"no reference-weight rule for {name} {shape} {t.dtype}")
        out[name] = torch.from_numpy(formula(name, n, off, sc).reshape(shape))
    return out


class ZeroLoss(nn.Module):
    """Replaces Renderer.perceptual for the 'no-vgg' timing: returns a 0 loss."""
    def forward(self, inp, *args, **kwargs):
        return inp.new_zeros(inp.size(0))


# ---- inputs -----------------------------------------------------------------------
NAMES = ["face_frame_img", "target_sketches", "ref_N_frame_img", "ref_N_frame_sketch", "audio_mels"]


def bench_inputs(n_ref, golden):
    """Golden-shaped inputs with n_ref references (golden refs tiled/cut, else seeded random)."""
    if golden:
        x = {k: torch.from_numpy(np.load(os.path.join(golden, "inputs", k + ".npy"))) for k in NAMES}
    else:
        g = torch.Generator().manual_seed(0)
        x = {"face_frame_img": torch.rand(1, 1, 3, 128, 128, generator=g),
             "target_sketches": (torch.rand(1, 5, 3, 128, 128, generator=g) < 0.04).float(),
             "ref_N_frame_img": torch.rand(1, 25, 3, 128, 128, generator=g),
             "ref_N_frame_sketch": (torch.rand(1, 25, 3, 128, 128, generator=g) < 0.04).float(),
             "audio_mels": torch.rand(1, 1, 1, 80, 16, generator=g) * 8 - 4}
    for k in ("ref_N_frame_img", "ref_N_frame_sketch"):
        idx = torch.arange(n_ref) % x[k].size(1)
        x[k] = x[k][:, idx].contiguous()
    return x


# ---- precision modes --------------------------------------------------------------
def set_mode(mode):
    tf32 = mode == "tf32"  # strict fp32 must turn cuDNN TF32 off: torch enables it by default
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def run(model, x, device, mode):
    args = [x[k] for k in NAMES]
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.float16,
                                         enabled=(mode == "fp16")):
        return model(*args)  # (generated_face, wrapped_ref, warp_loss, gen_loss)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="copy of the official repo root (models/video_renderer.py)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    ap.add_argument("--references", type=int, action="append", help="N references (repeatable; default 25)")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=None, help="default 3 on cuda, 1 on cpu")
    ap.add_argument("--modes", default=None, help="comma list of fp32,tf32,fp16 (default all; cpu: fp32 only)")
    ap.add_argument("--variants", default="official,no-vgg", help="official (with VGG losses), no-vgg")
    ap.add_argument("--golden", help="golden renderer folder with inputs/ and outputs/")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    a = ap.parse_args()
    dev = a.device
    refs = a.references or [25]
    warmup = a.warmup if a.warmup is not None else (3 if dev == "cuda" else 1)
    modes = (a.modes or ("fp32,tf32,fp16" if dev == "cuda" else "fp32")).split(",")
    if dev == "cpu" and modes != ["fp32"]:  # TF32 is a CUDA notion; fp16 convs on CPU take forever
        modes = ["fp32"]
    variants = a.variants.split(",")
    log = (lambda *m: None) if a.json else (lambda *m: print(*m, flush=True))

    mod, path = load_official(a.official)
    with contextlib.redirect_stdout(io.StringIO()):  # the constructor prints "Perceptual loss: ..."
        model = mod.Renderer()
    sd = reference_state_dict(model)
    model.load_state_dict(sd, strict=True)
    model = model.to(dev).eval()
    perceptual = model.perceptual
    res = {"script": "official_renderer.py", "official_file": path, "device": dev,
           "device_name": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
           "torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
           "threads": torch.get_num_threads(), "state_dict_entries": len(sd),
           "parameters": sum(p.numel() for p in model.parameters()), "golden": {}, "bench": []}
    log(f"official {path}\ndevice {res['device_name']}  torch {torch.__version__}  "
        f"state_dict {len(sd)} entries, {res['parameters']} parameters")

    if a.golden:  # correctness: full official forward on the golden inputs, per precision mode
        x = {k: v.to(dev) for k, v in bench_inputs(25, a.golden).items()}
        outs = ["generated_face", "wrapped_ref", "perceptual_warp_loss", "perceptual_gen_loss"]
        for mode in modes:
            set_mode(mode)
            got = run(model, x, dev, mode)
            d = {}
            for name, t in zip(outs, got):
                for sub in ("outputs", "outputs_f64"):
                    f = os.path.join(a.golden, sub, name + ".npy")
                    if os.path.isfile(f):
                        ref = np.load(f).astype(np.float64)
                        diff = float(np.abs(t.detach().double().cpu().numpy() - ref).max())
                        if name.startswith("perceptual"):
                            diff /= float(np.abs(ref).max())  # losses: relative difference
                        d[f"{name} vs {sub}"] = diff
            res["golden"][mode] = d
            log(f"golden [{mode}] " + "  ".join(f"{k}: {v:.3g}" for k, v in d.items()))

    for n in refs:  # timing
        x = {k: v.to(dev) for k, v in bench_inputs(n, a.golden).items()}
        for variant in variants:
            model.perceptual = perceptual if variant == "official" else ZeroLoss()
            for mode in modes:
                set_mode(mode)
                if dev == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                for _ in range(warmup):
                    run(model, x, dev, mode)
                times = []
                for _ in range(a.iterations):
                    sync(dev); t0 = time.perf_counter()
                    run(model, x, dev, mode)
                    sync(dev); times.append(time.perf_counter() - t0)
                med = statistics.median(times)
                row = {"references": n, "variant": variant, "mode": mode, "iterations": a.iterations,
                       "warmup": warmup, "median_s": med, "min_s": min(times), "max_s": max(times), "fps": 1.0 / med}
                if dev == "cuda":
                    row["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
                res["bench"].append(row)
                log(f"bench N={n:<3} {variant:8} {mode:5} median {med * 1e3:9.2f} ms/frame  "
                    f"{1 / med:8.2f} frames/s  (min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f}, "
                    f"{a.iterations} it)" + (f"  peak {row['peak_mem_mib']:.0f} MiB" if dev == "cuda" else ""))
        model.perceptual = perceptual
    set_mode("fp32")
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
