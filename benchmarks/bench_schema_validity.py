"""Schema validity of 20 extraction prompts, with and without the constraint: why it matters.

Each prompt is a short text about a person, a product or a city and the fields to pull out
of it. Without the constraint the prompt asks for JSON, as people do, and the answer goes
through ``json.loads`` and the schema (also counted leniently: the first ``{...}`` in the
text, for answers wrapped in prose or a code fence). With it, ``schema=`` makes the
backend enforce the schema and ``parsed`` holds the record. Greedy, the bundled model.
"Right" counts answers whose every field equals the text's (strings compared case-blind).

Usage: ``python benchmarks/bench_schema_validity.py [--backend gguf|transformers]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from _util import REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))

MODEL = "smollm2-135m-instruct"
MAX_TOKENS = 96


def _object(**fields: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": v} for k, v in fields.items()},
        "required": list(fields),
        "additionalProperties": False,
    }


PERSON = _object(name="string", age="integer", city="string")
PRODUCT = _object(product="string", price="number", in_stock="boolean")
CITY = _object(city="string", country="string", population_millions="number")
KEYS = {
    id(PERSON): "name (string), age (integer), city (string)",
    id(PRODUCT): "product (string), price (number), in_stock (true or false)",
    id(CITY): "city (string), country (string), population_millions (number)",
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "Anna Berg is 29 and lives in Stockholm.",
        PERSON,
        {"name": "Anna Berg", "age": 29, "city": "Stockholm"},
    ),
    (
        "Carlos, aged 41, moved to Madrid last year.",
        PERSON,
        {"name": "Carlos", "age": 41, "city": "Madrid"},
    ),
    (
        "Meet Priya Shah (35), a teacher in Mumbai.",
        PERSON,
        {"name": "Priya Shah", "age": 35, "city": "Mumbai"},
    ),
    (
        "Tom Wu, 52, runs a bakery in Toronto.",
        PERSON,
        {"name": "Tom Wu", "age": 52, "city": "Toronto"},
    ),
    (
        "Fatima is a 23-year-old student from Cairo.",
        PERSON,
        {"name": "Fatima", "age": 23, "city": "Cairo"},
    ),
    (
        "Lukas Novak, 67, retired in Prague.",
        PERSON,
        {"name": "Lukas Novak", "age": 67, "city": "Prague"},
    ),
    (
        "Yuki Tanaka lives in Osaka; she turned 30 in May.",
        PERSON,
        {"name": "Yuki Tanaka", "age": 30, "city": "Osaka"},
    ),
    (
        "The AquaBottle costs $12.50 and is in stock.",
        PRODUCT,
        {"product": "AquaBottle", "price": 12.5, "in_stock": True},
    ),
    (
        "Sold out: the TrailRunner shoes, $89.",
        PRODUCT,
        {"product": "TrailRunner", "price": 89, "in_stock": False},
    ),
    (
        "Our desk lamp Lumo is back in stock at 34.99 dollars.",
        PRODUCT,
        {"product": "Lumo", "price": 34.99, "in_stock": True},
    ),
    (
        "The NoiseAway headphones ($199) are currently unavailable.",
        PRODUCT,
        {"product": "NoiseAway", "price": 199, "in_stock": False},
    ),
    (
        "Buy the PocketCam today for only $249, available now.",
        PRODUCT,
        {"product": "PocketCam", "price": 249, "in_stock": True},
    ),
    (
        "The ChefPan sells for $45; we have plenty in stock.",
        PRODUCT,
        {"product": "ChefPan", "price": 45, "in_stock": True},
    ),
    (
        "GreenMug, $8, out of stock until June.",
        PRODUCT,
        {"product": "GreenMug", "price": 8, "in_stock": False},
    ),
    (
        "Paris, the capital of France, has about 2.1 million inhabitants.",
        CITY,
        {"city": "Paris", "country": "France", "population_millions": 2.1},
    ),
    (
        "Nairobi is Kenya's largest city, home to 4.4 million people.",
        CITY,
        {"city": "Nairobi", "country": "Kenya", "population_millions": 4.4},
    ),
    (
        "About 8.8 million people live in London, in the United Kingdom.",
        CITY,
        {"city": "London", "country": "United Kingdom", "population_millions": 8.8},
    ),
    (
        "Lima, Peru: population 10.1 million.",
        CITY,
        {"city": "Lima", "country": "Peru", "population_millions": 10.1},
    ),
    (
        "Melbourne in Australia counts roughly 5 million residents.",
        CITY,
        {"city": "Melbourne", "country": "Australia", "population_millions": 5},
    ),
    (
        "Hanoi, the capital of Vietnam, has 8.4 million people.",
        CITY,
        {"city": "Hanoi", "country": "Vietnam", "population_millions": 8.4},
    ),
]


def prompt_for(text: str, schema: dict[str, Any]) -> str:
    return (
        f"Extract {KEYS[id(schema)]} from the text. Answer with only a JSON object.\n\nText: {text}"
    )


def _valid(value: Any, schema: dict[str, Any]) -> bool:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema).is_valid(value)


def _lenient(text: str) -> Any:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the answer")
    return json.loads(text[start : end + 1])


def _right(value: Any, expected: dict[str, Any]) -> bool:
    if not isinstance(value, dict) or set(value) != set(expected):
        return False
    for key, want in expected.items():
        got = value[key]
        if isinstance(want, str):
            if not isinstance(got, str) or got.strip().lower() != want.lower():
                return False
        elif isinstance(want, bool) or isinstance(got, bool):
            if got is not want:
                return False
        elif not isinstance(got, (int, float)) or abs(got - want) > 1e-6:
            return False
    return True


def main(backend_name: str = "gguf", show: bool = False) -> dict[str, int]:
    sys.path.insert(0, str(REPO))
    from localmind_jupyter.backends import backend_class
    from localmind_jupyter.errors import GenerationError

    backend = backend_class(backend_name)()
    constrained = backend.model_capabilities(MODEL).json_schema
    counts = dict.fromkeys(("strict", "lenient", "free_right", "schema", "schema_right"), 0)
    for text, schema, expected in CASES:
        prompt = prompt_for(text, schema)
        free = backend.generate(prompt, MODEL, temperature=0, max_tokens=MAX_TOKENS).text
        try:
            strict = json.loads(free)
            counts["strict"] += _valid(strict, schema)
            counts["free_right"] += _valid(strict, schema) and _right(strict, expected)
        except ValueError:
            pass
        with contextlib.suppress(ValueError):
            counts["lenient"] += _valid(_lenient(free), schema)
        held = "(backend cannot enforce a schema)"
        if constrained:
            try:
                answer = backend.generate(
                    prompt, MODEL, schema=schema, temperature=0, max_tokens=MAX_TOKENS
                )
                counts["schema"] += 1
                counts["schema_right"] += _right(answer.parsed, expected)
                held = answer.text
            except GenerationError as exc:
                held = f"INVALID: {exc}"
        if show:
            print(f"--- {text}\n free:   {free!r:.160}\n schema: {held!r:.160}")
    n = len(CASES)
    print(f"{backend.display_name}, bundled SmolLM2-135M, greedy, {n} extraction prompts")
    print("| answers | valid against the schema | all fields right |")
    print("|---|---|---|")
    print(f"| asked for JSON, json.loads | {counts['strict']}/{n} | {counts['free_right']}/{n} |")
    print(f"| asked for JSON, first {{...}} in the text | {counts['lenient']}/{n} | |")
    if constrained:
        print(f"| schema= (constrained) | {counts['schema']}/{n} | {counts['schema_right']}/{n} |")
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="gguf", help="a backend type (gguf, transformers)")
    parser.add_argument("--show", action="store_true", help="print each pair of answers")
    args = parser.parse_args()
    main(args.backend, args.show)
