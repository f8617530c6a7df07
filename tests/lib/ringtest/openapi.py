# SPDX-License-Identifier: Apache-2.0
"""docs/openapi.json, and a check of a real answer against it."""
import json
import os

import jsonschema

DOC_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "openapi.json")
with open(DOC_PATH) as _f:
    DOC = json.load(_f)
RESOLVER = jsonschema.RefResolver.from_schema(DOC)


def check(method, template, resp):
    """Validates `resp` against the document's entry for it (its status is
    listed, its body fits the schema); returns the body."""
    op = DOC["paths"][template][method.lower()]
    status = str(resp.status)
    assert status in op["responses"], f"{method} {template}: {status} is not documented"
    schema = op["responses"][status]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(schema, resolver=RESOLVER).validate(resp.json())
    return resp.json()
