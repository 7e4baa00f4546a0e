"""A copy of a GGUF file with another chat template: a "thinking" model made offline.

No Qwen3 GGUF is at hand and the Hub is unreachable, so the bundled SmolLM2 file is
copied with ``gguf``'s reader and writer (tensors and every other key as they are),
only ``tokenizer.chat_template`` replaced, like gguf-py's ``gguf_new_metadata`` script.
"""

from __future__ import annotations

from pathlib import Path

#: The end of the bundled SmolLM2's template: the generation prompt, which the copies extend.
GENERATION_PROMPT = "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

#: Qwen3's switch: thinking off writes an empty trace after the generation prompt.
_QWEN3_SWITCH = (
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\n\n</think>\n\n' }}{% endif %}{% endif %}"
)

#: On/off plus a level (gpt-oss's ``reasoning_effort``); thinking on opens the trace in the
#: prompt, as DeepSeek-R1-style templates do, so the answer starts inside it.
_LEVEL = (
    "{% if reasoning_effort is defined %}{{ '<|im_start|>system\nReasoning: ' + "
    "reasoning_effort + '<|im_end|>\n' }}{% endif %}"
)
_OPENING_SWITCH = (
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\n\n</think>\n\n' }}{% elif enable_thinking is defined %}"
    "{{ '<think>\n' }}{% endif %}{% endif %}"
)


def qwen3_style(template: str) -> str:
    """SmolLM2's template with Qwen3's ``enable_thinking`` switch."""
    assert template.endswith(GENERATION_PROMPT), template[-120:]
    return template[: -len(GENERATION_PROMPT)] + _QWEN3_SWITCH


def levelled(template: str) -> str:
    """SmolLM2's template with a ``reasoning_effort`` line and a switch that opens the trace."""
    assert template.endswith(GENERATION_PROMPT), template[-120:]
    return _LEVEL + template[: -len(GENERATION_PROMPT)] + _OPENING_SWITCH


def always_opening(template: str) -> str:
    """A template that reads the switch but opens the trace whatever it says, and refuses a
    conversation that starts with the assistant (through ``raise_exception``)."""
    assert template.endswith(GENERATION_PROMPT), template[-120:]
    return (
        "{% if messages[0]['role'] == 'assistant' %}"
        "{{ raise_exception('the conversation must start with a user turn') }}{% endif %}"
        + template[: -len(GENERATION_PROMPT)]
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}"
        "{% if enable_thinking is defined %}{% endif %}{% endif %}"
    )


def copy_with_template(source: Path, target: Path, template: str) -> Path:
    """Write ``target``: ``source`` with ``template`` as its chat template."""
    import gguf

    reader = gguf.GGUFReader(source)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(target, arch, endianess=reader.endianess)
    alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    for field in reader.fields.values():
        name = field.name
        if name in (gguf.Keys.General.ARCHITECTURE, gguf.Keys.Tokenizer.CHAT_TEMPLATE):
            continue
        if name.startswith("GGUF."):  # the reader's virtual fields; the writer adds its own
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), kind, sub_type=sub)
    writer.add_chat_template(template)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name,
            tensor.data.shape,
            tensor.data.dtype,
            tensor.data.nbytes,
            tensor.tensor_type,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return target
