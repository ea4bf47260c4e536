"""Runs last: every response body recorded during this session (and every
webhook payload) validates against spec/stripe/spec3.json."""

import json
import os
from functools import lru_cache

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from conftest import RECORDED

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "spec", "stripe", "spec3.json")


def denull(n):
    """OpenAPI 3.0 `nullable: true` -> "or null"."""
    if isinstance(n, dict):
        n = {k: denull(v) for k, v in n.items()}
        return {"anyOf": [n, {"type": "null"}]} if n.pop("nullable", False) else n
    return [denull(v) for v in n] if isinstance(n, list) else n


@lru_cache(maxsize=1)
def registry():
    with open(SPEC) as f:
        spec = denull(json.load(f))
    return Registry().with_resource("urn:stripe", Resource.from_contents(spec, default_specification=DRAFT4))


@lru_cache(maxsize=None)
def validator(schema):
    return Draft4Validator({"$ref": "urn:stripe#/components/schemas/%s" % schema}, registry=registry())


def schema_for(body):
    if "error" in body and "object" not in body:
        return "error"
    kind = body.get("object")
    if body.get("deleted") is True:
        return "deleted_" + kind
    return kind


def objects(body):
    """The body, list items, and the snapshot inside events and errors."""
    items = body["data"] if body.get("object") == "list" else [body]
    for item in items:
        yield item
        if item.get("object") == "event":
            yield item["data"]["object"]
        if "error" in item:
            for key in ("payment_intent", "setup_intent", "payment_method"):
                if isinstance(item["error"].get(key), dict):
                    yield item["error"][key]


def test_every_recorded_object_matches_the_openapi_schema():
    assert len(RECORDED) > 20, "run the other conformance tests first"
    errors = []
    counts = {}
    for method, url, status, body, _ in RECORDED:
        if not isinstance(body, dict):
            errors.append("%s %s: not JSON" % (method, url))
            continue
        for obj in objects(body):
            schema = schema_for(obj)
            counts[schema] = counts.get(schema, 0) + 1
            for e in validator(schema).iter_errors(obj):
                path = "/".join(str(p) for p in e.absolute_path)
                errors.append("%s %s -> %s at %s: %s" % (method, url, schema, path, e.message[:200]))
    print("validated objects by schema:", json.dumps(counts, sort_keys=True))
    assert not errors, "\n".join(errors[:40])
