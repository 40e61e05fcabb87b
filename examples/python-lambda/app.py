"""The `python-lambda` example function for skiff's `lambda` contract.

An ordinary AWS Lambda Python handler, run by the official runtime interface client
(`python3 -m awslambdaric app.handler`), so the same file runs unmodified on AWS Lambda.

- `{"name": "Ann"}` answers `{"message": "Hello Ann!", "request_id": ..., "function": ...}`
  (`Hello World!` with no `name`).
- `{"fail": "text"}` raises `ValueError("text")`; the client reports it to `/error`.
- `{"sleep_ms": N}` sleeps N milliseconds first.

Every event prints one line to stdout.
"""

import time


def handler(event, context):
    if not isinstance(event, dict):
        event = {}
    print(f"python-lambda: event {context.aws_request_id}", flush=True)
    sleep_ms = event.get("sleep_ms")
    if sleep_ms:
        time.sleep(float(sleep_ms) / 1000.0)
    if event.get("fail") is not None:
        raise ValueError(str(event["fail"]))
    name = event.get("name") or "World"
    return {
        "message": f"Hello {name}!",
        "request_id": context.aws_request_id,
        "function": context.function_name,
    }
