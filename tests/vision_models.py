"""Tiny vision models built offline, for the local engines' image tests.

No real vision weights can be fetched here (the Hub is unreachable and no package ships
any), so these are random-weight models of the real architectures, small enough to build
in a few seconds:

* ``make_tiny_smolvlm``: an Idefics3 (SmolVLM's architecture) folder for the Transformers
  backend: a 2-layer SigLIP-style vision tower and a 2-layer Llama text model, with the
  bundled SmolLM2 tokenizer, an ``Idefics3Processor`` whose tiles are 32 px (4 image tokens
  each) and SmolVLM's chat template. Its image processor does not upscale
  (``do_resize=False``), so the number of tiles the vision tower gets follows the size
  of the image the core prepared.
* ``make_tiny_mmproj``: a llama.cpp projector (``mmproj``) GGUF of the LLaVA-1.5 type
  ("mlp": a 2-layer CLIP-style tower and a 2-layer projector) whose output width is the
  bundled SmolLM2's (576), so llama.cpp's multimodal handler runs it with the bundled GGUF.
"""

from __future__ import annotations

from pathlib import Path

#: SmolVLM's chat template (HuggingFaceTB/SmolVLM-256M-Instruct): typed content parts.
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
#: The tile edge of the tiny SmolVLM: an image of W x H px becomes ceil(W/32) x ceil(H/32)
#: tiles plus one overview (or a single tile when it fits in one).
TILE = 32
#: Image tokens per tile: (32 / 8 patches) ** 2 / scale_factor ** 2.
TOKENS_PER_TILE = 4
#: The bundled SmolLM2's embedding width: a projector's output must match it.
SMOLLM2_EMBD = 576


def make_tiny_smolvlm(folder: Path, tokenizer_source: Path) -> Path:
    """Save a random Idefics3 model + processor into ``folder`` (about 28 MB, ~5 s)."""
    import torch
    from transformers import (
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    rows = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    extra = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    tokenizer.add_tokens(extra + rows, special_tokens=True)
    images = Idefics3ImageProcessor(
        do_resize=False,
        size={"longest_edge": 4 * TILE},
        max_image_size={"longest_edge": TILE},
        do_image_splitting=True,
    )
    processor = Idefics3Processor(
        image_processor=images,
        tokenizer=tokenizer,
        image_seq_len=TOKENS_PER_TILE,
        chat_template=SMOLVLM_TEMPLATE,
    )
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TILE,
            "patch_size": 8,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_tiny_mmproj(path: Path, text_embd: int = SMOLLM2_EMBD) -> Path:
    """Write a random LLaVA-type projector GGUF (about 250 kB) for a ``text_embd`` model."""
    import gguf
    import numpy as np

    embd, heads, ffn, layers, image, patch = 32, 2, 64, 2, 32, 8
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("general.name", "localmind-test-tiny-mmproj")
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_audio_encoder", False)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_bool("clip.use_gelu", True)
    for key, value in {
        "image_size": image,
        "patch_size": patch,
        "embedding_length": embd,
        "feed_forward_length": ffn,
        "projection_dim": text_embd,
        "block_count": layers,
        "attention.head_count": heads,
    }.items():
        writer.add_uint32(f"clip.vision.{key}", value)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    def tensor(name: str, *shape: int, scale: float = 0.5) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def norm(name: str) -> None:
        writer.add_tensor(f"{name}.weight", np.ones(embd, np.float32))
        writer.add_tensor(f"{name}.bias", np.zeros(embd, np.float32))

    tensor("v.patch_embd.weight", embd, 3, patch, patch)
    tensor("v.patch_embd.bias", embd)
    tensor("v.class_embd", embd)
    tensor("v.position_embd.weight", (image // patch) ** 2 + 1, embd)
    norm("v.pre_ln")
    for i in range(layers):
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensor(f"v.blk.{i}.{part}.weight", embd, embd)
            tensor(f"v.blk.{i}.{part}.bias", embd)
        norm(f"v.blk.{i}.ln1")
        norm(f"v.blk.{i}.ln2")
        tensor(f"v.blk.{i}.ffn_up.weight", ffn, embd)
        tensor(f"v.blk.{i}.ffn_up.bias", ffn)
        tensor(f"v.blk.{i}.ffn_down.weight", embd, ffn)
        tensor(f"v.blk.{i}.ffn_down.bias", embd)
    tensor("mm.0.weight", 64, embd, scale=0.3)
    tensor("mm.0.bias", 64, scale=0.0)
    tensor("mm.2.weight", text_embd, 64, scale=0.3)
    tensor("mm.2.bias", text_embd, scale=0.0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
