"""check_schema.py SCHEMA DOCUMENT...

Checks that SCHEMA is a valid JSON Schema (draft 2020-12), then validates each DOCUMENT with an
independent validator (the jsonschema package). Prints one JSON line per document:
{"file": ..., "valid": true|false, "errors": ["<json path>: <message>", ...]}.
Exit 0 when the checks ran (whatever the verdicts), 2 when the schema itself is not valid.
"""
import json
import sys

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        print(f"{sys.argv[1]}: not a valid draft 2020-12 schema: {error.message}", file=sys.stderr)
        return 2
    validator = Draft202012Validator(schema)
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]
        print(json.dumps({"file": path, "valid": not errors, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
