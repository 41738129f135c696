"""CLIP towers on ONNX Runtime, exported from the same open_clip model and checked against it.

A tower (``text``: token ids -> embedding, ``image``: preprocessed pixels -> embedding,
both L2-normalised inside the graph) is exported with ``torch.onnx.export`` (the
TorchScript exporter, ``dynamo=False``, which needs no onnxscript) with a dynamic batch
axis. The file is a derived artefact of the weights, kept under
``models/onnx/<weights SHA-256>/<tower>-<precision>.onnx`` with a JSON record beside it:
exporter, opset, torch / onnx / onnxruntime / open_clip versions, the weights hash, the
file's own SHA-256 and the parity measured at export.

The text graph also has a dynamic sequence axis when the model allows it
(``indexer.embeddings.text_sequence_mode``: causal mask, end-of-text pooling) and its
blocks are open_clip's standard ones: it is exported from ``encode_text_prefix`` (the
positional embedding and causal mask cut to the input's length; attention written out
in plain tensor ops, as ``nn.MultiheadAttention`` traces with its sequence length
fixed), and the tower cuts each batch after its last end-of-text token before running
it: a 6-token query costs 6 positions, not 77. The record says which
(``text_sequence``: ``eot`` or ``full``, with ``text_sequence_note``), and it is part of
what a stored export must match, so a full-length export from before is made again.

``load_tower`` does, in order:

1. read the record; when it is missing, unreadable or names another weights hash,
   exporter, opset or library version, export again;
2. read the ``.onnx`` file and check its SHA-256 against the record (a torn or altered
   file is exported again);
3. on export, run the new graph and the torch tower on probe inputs (English and
   Ukrainian queries, short, near and over 77 tokens, each cut as a query is and all in
   one full-length batch; synthetic frames): the smallest cosine must reach
   ``PARITY_MIN[precision]`` or nothing is written (``OnnxExportError``);
4. both files are written atomically (temp, fsync, rename), the graph first, so a
   crash leaves a graph without a matching record, which step 1 or 2 replaces.

``use_onnx_towers`` puts the sessions into a ``ClipEmbedder``. When export fails it
logs why and leaves that tower on torch: the answer is then slower, never different.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import torch
import torch.nn.functional as F
from PIL import Image

from indexer.embeddings import (
    TEXT_EOT,
    TEXT_FULL,
    ClipEmbedder,
    encode_text_prefix,
    eot_length,
)
from storage.atomic import make_private_dirs, write_atomically
from storage.errors import OkoError

__all__ = [
    "EXPORTER",
    "OPSET",
    "PARITY_MIN",
    "TEXT_LENGTH_MULTIPLE",
    "OnnxExportError",
    "OnnxTower",
    "load_tower",
    "tower_paths",
    "use_onnx_towers",
]

log = logging.getLogger(__name__)

FORMAT = 1
EXPORTER = "torch.onnx.export (TorchScript, dynamo=False)"
OPSET = 17
TOWERS = ("text", "image")
PRECISIONS = ("fp32", "int8")
# The smallest cosine with open_clip's own tower an export must reach on the probes.
PARITY_MIN = {"fp32": 0.999, "int8": 0.99}
PROBE_TEXTS = (
    "a red car at night", "white van near the crossing", "person with a backpack",
    "червоний автомобіль уночі", "білий фургон біля перехрестя", "людина з рюкзаком",
    "", "bus",
    "a man in a dark hooded jacket and grey trousers walks a small white dog along the "
    "wet pavement past the pharmacy, then crosses the road at the tram stop near the "
    "yellow kiosk while a blue taxi waits",  # near 77 tokens
    "вантажівка " * 40,  # over 77 tokens: cut by the tokenizer
)
# The text tower's input is cut to a multiple of this many tokens (bounds the shapes).
TEXT_LENGTH_MULTIPLE = 1


class OnnxExportError(OkoError):
    """A CLIP tower could not be exported to ONNX or did not match open_clip; nothing was kept."""

    exit_code = 5
    http_status = 503


@dataclass(frozen=True)
class OnnxTower:
    """A loaded tower: its session, file and record. Calling it runs one batch."""

    tower: str
    precision: str
    path: Path
    record: dict[str, Any]
    session: ort.InferenceSession

    @property
    def backend(self) -> str:
        return f"onnx-{self.precision}"

    @property
    def trims(self) -> bool:
        """Whether the graph takes token rows cut after their end-of-text token."""
        return self.tower == "text" and self.record.get("text_sequence") == TEXT_EOT

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        if self.trims:
            inputs = inputs[:, :eot_length(inputs, TEXT_LENGTH_MULTIPLE)]
        outputs = self.session.run(None, {"input": inputs})
        return np.asarray(outputs[0], dtype=np.float32)


def tower_paths(cache_dir: Path, weights_sha256: str, tower: str,
                precision: str = "fp32") -> tuple[Path, Path]:
    """Where the graph and its JSON record for this weights hash, tower and precision live."""
    folder = cache_dir / weights_sha256
    stem = f"{tower}-{precision}"
    return folder / f"{stem}.onnx", folder / f"{stem}.json"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _expected_record(embedder: ClipEmbedder, tower: str, precision: str) -> dict[str, Any]:
    """The fields a record must carry to be reused by this process, as they are now."""
    record = {
        "format": FORMAT, "tower": tower, "precision": precision,
        "weights_sha256": embedder.weights_sha256, "preset": embedder.preset,
        "architecture": embedder.architecture, "exporter": EXPORTER, "opset": OPSET,
        "torch": torch.__version__, "onnx": _version("onnx"),
        "onnxruntime": ort.__version__, "open_clip": _version("open_clip_torch"),
    }
    if tower == "text":
        record["text_sequence"] = _text_sequence(embedder)[0]
    return record


def _text_sequence(embedder: ClipEmbedder) -> tuple[str, str]:
    """``(TEXT_EOT, why)`` when the text graph can take rows cut after the end-of-text
    token: the model allows it and its blocks are the ones ``_attention`` writes out."""
    if embedder.text_sequence != TEXT_EOT:
        return TEXT_FULL, embedder.text_sequence_note
    from open_clip.transformer import ResidualAttentionBlock

    transformer = cast(Any, embedder.model).transformer
    for block in getattr(transformer, "resblocks", ()):
        attn = getattr(block, "attn", None)
        if (type(block) is not ResidualAttentionBlock or hasattr(block, "ln_1_kv")
                or not isinstance(attn, torch.nn.MultiheadAttention) or not attn.batch_first
                or not attn._qkv_same_embed_dim or attn.bias_k is not None):
            return TEXT_FULL, "the text tower's blocks are not open_clip's standard ones"
    if not getattr(transformer, "batch_first", False):
        return TEXT_FULL, "the text transformer is not batch-first"
    return TEXT_EOT, embedder.text_sequence_note


class _Towers(Protocol):
    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor: ...

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor: ...


class _Tower(torch.nn.Module):
    """One open_clip tower as a module whose forward is that tower, normalised."""

    def __init__(self, model: torch.nn.Module, tower: str) -> None:
        super().__init__()
        self.model = model
        self.tower = tower

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        towers = cast(_Towers, self.model)
        if self.tower == "text":
            return towers.encode_text(inputs, normalize=True)
        return towers.encode_image(inputs, normalize=True)


def _attention(attn: torch.nn.MultiheadAttention, x: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
    """``nn.MultiheadAttention`` (self-attention, batch first, additive mask) in plain
    tensor ops whose shapes the tracer keeps dynamic."""
    heads, head_dim = attn.num_heads, attn.head_dim
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(t.shape[0], -1, heads, head_dim).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax((q * head_dim ** -0.5) @ k.transpose(-2, -1) + mask, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(x.shape[0], -1, attn.embed_dim)
    return cast(torch.Tensor, attn.out_proj(out))


class _TextUpToEot(torch.nn.Module):
    """The text tower on rows of any length (``encode_text_prefix``), normalised."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def _blocks(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in cast(Any, self.model).transformer.resblocks:
            x = x + block.ls_1(_attention(block.attn, block.ln_1(x), mask.to(x.dtype)))
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        return x

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return encode_text_prefix(self.model, tokens, blocks=self._blocks)


def _probe_images(size: tuple[int, int] = (448, 252)) -> list[Image.Image]:
    """Frames unlike each other: noise, a gradient and flat grey, at the stored frame size."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    ramp = np.broadcast_to(np.linspace(0, 255, size[0], dtype=np.uint8)[None, :, None],
                           (size[1], size[0], 3)).copy()
    return [Image.fromarray(noise), Image.fromarray(ramp), Image.new("RGB", size, (128,) * 3)]


def _probe_input(embedder: ClipEmbedder, tower: str) -> torch.Tensor:
    if tower == "text":
        return embedder.tokenize(PROBE_TEXTS)
    return embedder.preprocess_batch(_probe_images())


def _session(model: bytes, threads: int, *, spinning: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per core
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # onnxruntime's idle threads spin by default; between queries they would take the
    # cores FAISS's OpenMP threads need (and the reverse), so they sleep instead
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(model, sess_options=options,
                                providers=["CPUExecutionProvider"])


def _export_bytes(embedder: ClipEmbedder, tower: str, probe: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    module: torch.nn.Module = _Tower(embedder.model, tower)
    sample, axes = probe[:2], {0: "batch"}
    if tower == "text" and _text_sequence(embedder)[0] == TEXT_EOT:
        module = _TextUpToEot(embedder.model)
        sample, axes = sample[:, :eot_length(sample)], {0: "batch", 1: "tokens"}
    # grad stays on: without it the attention layers take a fused fast path (aten::
    # _native_multi_head_attention) that has no ONNX form
    with warnings.catch_warnings(), torch.inference_mode(False), torch.enable_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it treats as constant
        torch.onnx.export(
            module.eval(), (sample,),
            buffer,  # type: ignore[arg-type]  # a file object works; the stub says path
            dynamo=False,
            opset_version=OPSET, input_names=["input"], output_names=["embedding"],
            dynamic_axes={"input": axes, "embedding": {0: "batch"}},
        )
    return buffer.getvalue()


def _run_probe(session: ort.InferenceSession, probe: torch.Tensor, trims: bool) -> np.ndarray:
    """The graph's rows for the probe: one full batch, and (when it trims) each row cut
    after its end-of-text token, as a query runs; the trimmed rows follow the batch."""
    whole = np.asarray(session.run(None, {"input": probe.numpy()})[0], dtype=np.float32)
    if not trims:
        return whole
    rows = [session.run(None, {"input": row[:, :eot_length(row, TEXT_LENGTH_MULTIPLE)]})[0]
            for row in probe.numpy()[:, None, :]]
    return np.concatenate([whole, *rows]).astype(np.float32)


def _quantize_int8(model: bytes, work_dir: Path) -> bytes:
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        QuantType,
        quantize_dynamic,
    )

    source, target = work_dir / "fp32.onnx", work_dir / "int8.onnx"
    source.write_bytes(model)
    quantize_dynamic(source, target, weight_type=QuantType.QInt8)
    return target.read_bytes()


def _min_cosine(expected: np.ndarray, got: np.ndarray) -> float:
    norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1)
    return float(np.min(np.sum(expected * got, axis=1) / np.maximum(norms, 1e-12)))


def _export(embedder: ClipEmbedder, tower: str, precision: str, cache_dir: Path,
            threads: int) -> tuple[bytes, dict[str, Any]]:
    """Export, check parity on the probes, then write graph and record; both or neither."""
    probe = _probe_input(embedder, tower)
    sequence, note = _text_sequence(embedder) if tower == "text" else ("", "")
    try:
        model = _export_bytes(embedder, tower, probe)
        if precision == "int8":
            make_private_dirs(cache_dir)
            with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".quantize-") as work:
                model = _quantize_int8(model, Path(work))
        got = _run_probe(_session(model, threads), probe, sequence == TEXT_EOT)
    except Exception as exc:  # the exporter and onnxruntime raise many unrelated types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxExportError(
            f"The {embedder.preset} {tower} tower could not be exported to ONNX "
            f"({type(exc).__name__}: {first[:300]}).") from exc
    expected = (embedder.torch_encode_text(probe) if tower == "text"
                else embedder.torch_encode_images(probe))
    expected = np.concatenate([expected] * (len(got) // len(expected)))
    parity = _min_cosine(expected, got)
    if not parity >= PARITY_MIN[precision]:
        raise OnnxExportError(
            f"The ONNX export of the {embedder.preset} {tower} tower ({precision}) reached "
            f"cosine {parity:.6f} with open_clip, below the {PARITY_MIN[precision]} required; "
            "it was not kept.")
    record = {**_expected_record(embedder, tower, precision),
              "onnx_sha256": hashlib.sha256(model).hexdigest(), "onnx_bytes": len(model),
              "parity_min_cosine": round(parity, 7), "probe_inputs": int(probe.shape[0])}
    if tower == "text":
        record["text_sequence_note"] = note
    graph_path, record_path = tower_paths(cache_dir, embedder.weights_sha256, tower, precision)
    make_private_dirs(graph_path.parent)
    write_atomically(graph_path, model)
    write_atomically(record_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    log.info("exported the %s %s tower to %s (%s, parity %.6f)", embedder.preset, tower,
             graph_path, precision, parity)
    return model, record


def _reusable(embedder: ClipEmbedder, tower: str, precision: str,
              cache_dir: Path) -> tuple[bytes, dict[str, Any]] | None:
    """The stored graph and record when they are complete, intact and from these versions."""
    graph_path, record_path = tower_paths(cache_dir, embedder.weights_sha256, tower, precision)
    try:
        record = json.loads(record_path.read_text())
        model = graph_path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    expected = _expected_record(embedder, tower, precision)
    stale = [key for key, value in expected.items() if record.get(key) != value]
    if stale:
        log.info("re-exporting the %s %s tower: %s changed", embedder.preset, tower,
                 ", ".join(stale))
        return None
    if hashlib.sha256(model).hexdigest() != record.get("onnx_sha256"):
        log.warning("re-exporting the %s %s tower: %s does not match its recorded SHA-256",
                    embedder.preset, tower, graph_path)
        return None
    return model, record


def load_tower(embedder: ClipEmbedder, tower: str, *, cache_dir: Path, threads: int = 0,
               precision: str = "fp32") -> OnnxTower:
    """The tower as an ONNX Runtime session: the stored export, or a new one.

    Raises ``OnnxExportError`` when a new export fails or misses parity with open_clip.
    """
    if tower not in TOWERS or precision not in PRECISIONS:
        raise ValueError(f"unknown tower {tower!r} or precision {precision!r}")
    found = _reusable(embedder, tower, precision, cache_dir)
    model, record = found or _export(embedder, tower, precision, cache_dir, threads)
    graph_path, _ = tower_paths(cache_dir, embedder.weights_sha256, tower, precision)
    return OnnxTower(tower=tower, precision=precision, path=graph_path, record=record,
                     session=_session(model, threads))


def use_onnx_towers(embedder: ClipEmbedder, *, towers: tuple[str, ...], cache_dir: Path,
                    threads: int = 0, precision: str = "fp32",
                    release_torch_text: bool = False) -> dict[str, str]:
    """Run ``towers`` of ``embedder`` on ONNX Runtime, each falling back to torch on failure.

    Returns, per tower, why it stayed on torch (empty when all moved). Never raises for
    an export problem: it is logged, and that tower keeps answering through torch.
    With ``release_torch_text`` (the API process) the torch text weights are dropped once
    the text tower is on ONNX: they are then never needed again.
    """
    reasons: dict[str, str] = {}
    for tower in towers:
        try:
            loaded = load_tower(embedder, tower, cache_dir=cache_dir, threads=threads,
                                precision=precision)
        except (OnnxExportError, OSError) as exc:
            reason = exc.message if isinstance(exc, OnnxExportError) else \
                f"The ONNX export could not be stored ({exc})."
            log.warning("%s The %s tower runs on torch.", reason, tower)
            reasons[tower] = reason
            embedder.use_runner(tower, None, "torch")
            continue
        embedder.use_runner(tower, loaded, loaded.backend)
        if tower == "text" and release_torch_text:
            embedder.release_torch_text()
    return reasons

