#!/usr/bin/env python3
"""diffusers-worker.py -- reference sdl denoiser worker for a Hugging Face diffusers model.

What it is
    An out-of-process denoiser for `sdl-supergen --model exec:COMMAND` (and sdl-serve):
    it speaks the sdl denoiser worker protocol (sdl-formats(5), DENOISER WORKER
    PROTOCOL; lib/gen/protocol.h) on stdin/stdout and calls the pipeline's UNet or
    transformer once per batch of tiles. sdl does the tiling, the sampler, the region
    cache, the scheduling across devices and the fusion; this worker only answers
    "what does the model predict for these noisy tiles at these timesteps".

What it needs
    - an NVIDIA GPU (CUDA_VISIBLE_DEVICES is set by sdl, one worker per --devices entry),
    - Python 3.9+, torch with CUDA, diffusers, transformers (and accelerate),
    - the model weights, in the local Hugging Face cache or a directory
      (e.g. stabilityai/stable-diffusion-2-1-base; a few GB).

How to run it (on a GPU machine)
    sdl-supergen works on RGB pixels, so it needs a pixel-space model (3 channels):
    DeepFloyd IF stage I (text-conditioned, 64x64) or an unconditional google/ddpm-*
    model. Stage 1 generated from a prompt, then refined x4 (stage 2):
    sdl-supergen --generate --prompt 'a red fox in fresh snow' --frames 1 \\
        --sketch-size 64x64 --scale 4 --strength 0.3 \\
        --model 'exec:python3 scripts/diffusers-worker.py \\
        --model DeepFloyd/IF-I-M-v1.0 --tile 64 --fp16' --devices 0,1 -o fox.png
    A request with a prompt and no reference (sdl-supergen --generate, sdl-serve prompt
    requests) is sampled from the model's own prior, conditioned on the prompt; an
    empty prompt is unconditional. Latent models (Stable Diffusion: 4 channels) serve
    tools that work on latents; sdl-supergen refuses them.
    Model loading can take minutes: give sdl a start timeout that allows it.
    `python3 scripts/diffusers-worker.py --selftest` checks the frame codec only
    (no torch needed).

Honest limits
    - It cannot run on the machine this repository was developed on (no GPU, no
      network, no weights); it is checked there only with `python3 -m py_compile`
      and the codec self test. Treat the model-calling part as a starting point.
    - Tiles are the model's latents: [t, h, w, C] with C the UNet's in_channels. The
      image path (t = 1) calls `unet(x, t, encoder_hidden_states=...)`; video
      transformers (CogVideoX, HunyuanVideo) take other layouts and keyword arguments:
      adapt `Model.call` for them.
    - The reference canvas in OPEN is in pixel space; this worker keeps it but does not
      use it (a latent model would need the VAE to encode it).
    - The prediction type and time parameterisation are read from the pipeline's
      scheduler config. sdl's VP schedule is the scaled-linear one of latent diffusion;
      a model trained on another (IF: squaredcos_cap_v2) is given the timestep whose
      alpha_bar is nearest to the level sdl sends, so the model sees the noise level it
      was trained for (flow models get sdl's timestep as sent).
    - A model with learned variance (IF: out_channels = 2 x in_channels) answers with
      the first C channels, the prediction proper.

Protocol summary (all little-endian; one 128-byte header per frame, then text, then data)
    worker -> host  HELLO (tile shape, channels, pred, time, max batch, name)
    host -> worker  OPEN (request id, seed, prompt, optional f32 reference)   -> OK | ERROR
    host -> worker  PREDICT x batch (index 0..n-1, f32 tile [+ cond tile])   -> RESULT x n | ERROR
    host -> worker  CLOSE (request id), BYE (exit 0); end of stdin also means exit.
    After an ERROR for a batch, sdl kills this process and reruns the batch elsewhere.
"""

import argparse
import os
import struct
import sys

MAGIC = b"SDLW"
VERSION = 1
# magic, version, op, text_len, dtype, pred, time, flags, data_len, request, tile_id,
# seed, step, timestep, level, offset[3], shape[4], batch, index, reserved
HEADER = struct.Struct("<4sHHIBBBBQqqQiid3q4qHHI")
assert HEADER.size == 128

HELLO, OPEN, OK, CLOSE, PREDICT, RESULT, ERROR, BYE = range(1, 9)
DT_F32 = 1
F_COND = 1
PRED = {"eps": 0, "x0": 1, "v": 2, "flow": 3}
TIME = {"vp": 0, "flow": 1}
MAX_TEXT = 1 << 20
MAX_DATA = 1 << 36


class Frame:
    """One protocol frame: header fields as attributes, text (bytes), data (bytes)."""

    FIELDS = ("op", "text_len", "dtype", "pred", "time", "flags", "data_len", "request",
              "tile_id", "seed", "step", "timestep", "level", "offset", "shape", "batch",
              "index")

    def __init__(self, op, **kw):
        self.op = op
        self.dtype = self.pred = self.time = self.flags = 0
        self.request = self.tile_id = self.seed = self.step = self.timestep = 0
        self.level = 0.0
        self.offset = (0, 0, 0)
        self.shape = (0, 0, 0, 0)
        self.batch = self.index = 0
        self.text = b""
        self.data = b""
        for k, v in kw.items():
            setattr(self, k, v)

    def encode(self):
        header = HEADER.pack(MAGIC, VERSION, self.op, len(self.text), self.dtype, self.pred,
                             self.time, self.flags, len(self.data), self.request, self.tile_id,
                             self.seed, self.step, self.timestep, float(self.level),
                             *self.offset, *self.shape, self.batch, self.index, 0)
        return header + self.text + self.data


class ProtocolError(Exception):
    pass


def read_exact(stream, n):
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def decode_header(raw):
    """Header fields of a 128-byte header, with the size checks sdl itself applies."""
    (magic, version, op, text_len, dtype, pred, time_kind, flags, data_len, request, tile_id,
     seed, step, timestep, level, o0, o1, o2, s0, s1, s2, s3, batch, index,
     reserved) = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError("not a protocol frame (magic %r)" % magic)
    if version != VERSION:
        raise ProtocolError("protocol version %d (this worker speaks %d)" % (version, VERSION))
    if reserved or text_len > MAX_TEXT or data_len > MAX_DATA:
        raise ProtocolError("bad header (reserved bytes or sizes)")
    f = Frame(op, dtype=dtype, pred=pred, time=time_kind, flags=flags, request=request,
              tile_id=tile_id, seed=seed, step=step, timestep=timestep, level=level,
              offset=(o0, o1, o2), shape=(s0, s1, s2, s3), batch=batch, index=index)
    f.text_len, f.data_len = text_len, data_len
    if op in (OPEN, PREDICT, RESULT) and dtype == DT_F32:
        want = 4
        for s in f.shape:
            if s < 1:
                raise ProtocolError("bad shape %r" % (f.shape,))
            want *= s
        if op == PREDICT and flags & F_COND:
            want *= 2
        if want != data_len:
            raise ProtocolError("data length %d, shape needs %d" % (data_len, want))
    return f


def read_frame(stream):
    raw = read_exact(stream, HEADER.size)
    if raw is None:
        return None
    f = decode_header(raw)
    body = read_exact(stream, f.text_len + f.data_len)
    if body is None:
        return None
    f.text, f.data = body[:f.text_len], body[f.text_len:]
    return f


class Model:
    """The diffusers side: load once, then predict batches of latent tiles."""

    def __init__(self, args):
        import torch  # imported here so that --selftest works without torch
        from diffusers import DiffusionPipeline

        self.torch = torch
        self.device = torch.device("cuda:0")  # the device sdl made visible
        dtype = torch.float16 if args.fp16 else torch.float32
        self.pipe = DiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype)
        self.pipe.to(self.device)
        self.net = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer")
        self.dtype = dtype
        # text-conditioned pipelines encode prompts; unconditional ones (DDPMPipeline)
        # ignore them
        self.text_conditioned = hasattr(self.pipe, "encode_prompt")
        self.guidance = args.guidance
        cfg = self.pipe.scheduler.config
        kind = cfg.get("prediction_type", "epsilon")
        flow = "FlowMatch" in type(self.pipe.scheduler).__name__
        self.pred = "flow" if flow else {"epsilon": "eps", "sample": "x0",
                                         "v_prediction": "v"}[kind]
        self.time = "flow" if flow else "vp"
        self.channels = self.net.config.in_channels
        # the model's alpha_bar per timestep, to match sdl's noise level (VP only)
        cumprod = getattr(self.pipe.scheduler, "alphas_cumprod", None)
        self.alphas_cumprod = (cumprod.double().cpu()
                               if self.time == "vp" and cumprod is not None else None)
        self.tile = (1, args.tile, args.tile)
        self.max_batch = args.batch
        self.name = "diffusers %s" % args.model
        self.requests = {}

    def open(self, request, prompt, seed, reference):
        # Classifier-free guidance: embeddings of the prompt and of the empty prompt
        # (keywords: Stable Diffusion's and IF's encode_prompt order them differently).
        # No reference is needed: without one the request is sampled from the prior.
        cond = uncond = None
        if self.text_conditioned:
            with self.torch.no_grad():
                cond, uncond = self.pipe.encode_prompt(
                    prompt=prompt, device=self.device, num_images_per_prompt=1,
                    do_classifier_free_guidance=True, negative_prompt="")[:2]
        self.requests[request] = (cond, uncond, reference)

    def close(self, request):
        self.requests.pop(request, None)

    def call(self, x, t, emb):
        """x [n, C, h, w], t [n], emb [n, L, D] or None -> model output [n, C', h, w]."""
        if emb is None:
            return self.net(x, t).sample
        return self.net(x, t, encoder_hidden_states=emb).sample

    def model_timestep(self, f):
        """The model's timestep for the noise level sdl sent (see Honest limits)."""
        if self.alphas_cumprod is None:
            return f.timestep
        return int(self.torch.argmin((self.alphas_cumprod - f.level).abs()))

    def predict(self, frames):
        torch = self.torch
        n = len(frames)
        t_, h, w, c = frames[0].shape
        if t_ != 1:
            raise ValueError("this worker handles image tiles (t = 1); adapt Model.call")
        numel = t_ * h * w * c
        xs, conds, uncs, ts = [], [], [], []
        for f in frames:
            if f.request not in self.requests:
                raise KeyError("request %d is not open" % f.request)
            cond, unc, _ = self.requests[f.request]
            arr = torch.frombuffer(bytearray(f.data[:numel * 4]), dtype=torch.float32)
            xs.append(arr.view(h, w, c).permute(2, 0, 1))
            if self.text_conditioned:
                conds.append(cond[0])
                uncs.append(unc[0])
            ts.append(self.model_timestep(f))
        x = torch.stack(xs).to(self.device, self.dtype)
        t = torch.tensor(ts, device=self.device)
        with torch.no_grad():
            if self.text_conditioned:
                both = self.call(torch.cat([x, x]), torch.cat([t, t]),
                                 torch.stack(uncs + conds).to(self.device, self.dtype))
                out_unc, out_cond = both[:n], both[n:]
                out = out_unc + self.guidance * (out_cond - out_unc)
            else:
                out = self.call(x, t, None)
        out = out[:, :c]  # learned variance: the first C channels are the prediction
        out = out.float().permute(0, 2, 3, 1).contiguous().cpu()  # [n, h, w, C]
        return [out[i].numpy().astype("<f4").tobytes() for i in range(n)]


def serve(model, inp, out):
    def send(frame):
        out.write(frame.encode())
        out.flush()

    t_, h, w = model.tile
    send(Frame(HELLO, dtype=DT_F32, pred=PRED[model.pred], time=TIME[model.time],
               shape=(t_, h, w, model.channels), batch=model.max_batch,
               text=model.name.encode()[:200]))
    while True:
        f = read_frame(inp)
        if f is None or f.op == BYE:
            return 0
        if f.op == OPEN:
            try:
                ref = f.data if f.dtype == DT_F32 else None
                model.open(f.request, f.text.decode("utf-8", "replace"), f.seed, ref)
                send(Frame(OK, request=f.request))
            except Exception as e:  # refuse the request, stay alive
                send(Frame(ERROR, text=("OPEN failed: %s" % e).encode()[:4000]))
        elif f.op == CLOSE:
            model.close(f.request)
        elif f.op == PREDICT:
            frames = [f] + [read_frame(inp) for _ in range(f.batch - 1)]
            if any(g is None for g in frames):
                return 0
            try:
                results = model.predict(frames)
            except Exception as e:  # sdl kills this worker and retries elsewhere
                send(Frame(ERROR, text=("batch failed: %r" % e).encode()[:4000]))
                continue
            for g, data in zip(frames, results):
                # a RESULT echoes its PREDICT header: op changes, flags clear
                send(Frame(RESULT, request=g.request, tile_id=g.tile_id, step=g.step,
                           timestep=g.timestep, level=g.level, offset=g.offset,
                           shape=g.shape, dtype=DT_F32, batch=g.batch, index=g.index,
                           data=data))
        else:
            raise ProtocolError("unexpected op %d from the host" % f.op)


def selftest():
    import io
    frames = [Frame(OPEN, request=3, seed=9, text=b"a cat", dtype=DT_F32, shape=(1, 1, 1, 2),
                    data=struct.pack("<2f", 0.5, -0.5)),
              Frame(PREDICT, request=3, tile_id=7, step=1, timestep=500, level=0.25,
                    offset=(0, 8, 16), shape=(1, 1, 1, 2), dtype=DT_F32, flags=F_COND,
                    batch=1, data=struct.pack("<4f", 1, 2, 3, 4))]
    # a generation request: a prompt and no reference (dtype and shape 0, no data)
    frames.append(Frame(OPEN, request=4, seed=1, text=b"a red fox"))
    stream = io.BytesIO(b"".join(fr.encode() for fr in frames))
    for want in frames:
        got = read_frame(stream)
        assert got.encode() == want.encode(), "round trip"
    assert read_frame(stream) is None
    print("diffusers-worker: codec self test passed")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="diffusers model id or directory")
    ap.add_argument("--tile", type=int, default=64, help="native latent tile side")
    ap.add_argument("--batch", type=int, default=4, help="largest batch")
    ap.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance")
    ap.add_argument("--fp16", action="store_true", help="half precision weights")
    ap.add_argument("--selftest", action="store_true", help="check the frame codec and exit")
    args = ap.parse_args()
    if args.selftest:
        return selftest()
    if not args.model:
        ap.error("--model is required")
    # stdout carries frames only: keep a private handle on it and send everything the
    # libraries print (progress bars, warnings) to stderr
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    model = Model(args)
    return serve(model, sys.stdin.buffer, proto_out)


if __name__ == "__main__":
    sys.exit(main())
