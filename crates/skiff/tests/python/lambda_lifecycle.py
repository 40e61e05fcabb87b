"""boto3 and the AWS CLI against skiff's Lambda API: the whole lifecycle of a function.

Usage: python3 lambda_lifecycle.py http://127.0.0.1:PORT
The credentials come as AWS clients find them: AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE
name the daemon's `aws-credentials` file. Exits non-zero (with the failed assertion) if
anything is off.
"""
import base64
import json
import os
import subprocess
import sys
import time

import boto3
from botocore.config import Config

endpoint = sys.argv[1]
client = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(retries={"max_attempts": 1}, read_timeout=60),
)
IMAGE = "skiff/lambda-hello:latest"

# Create, get, list.
created = client.create_function(
    FunctionName="boto",
    PackageType="Image",
    Code={"ImageUri": IMAGE},
    Role="arn:aws:iam::000000000000:role/any",
    MemorySize=128,
    Timeout=5,
    Environment={"Variables": {"GREETING": "hi"}},
)
assert created["FunctionName"] == "boto", created
assert created["FunctionArn"].endswith(":function:boto"), created
assert created["MemorySize"] == 128 and created["Timeout"] == 5, created

try:
    client.create_function(FunctionName="boto", PackageType="Image", Code={"ImageUri": IMAGE}, Role="r")
    raise AssertionError("creating a function twice must fail")
except client.exceptions.ResourceConflictException:
    pass

got = client.get_function(FunctionName="boto")
assert got["Configuration"]["Environment"]["Variables"] == {"GREETING": "hi"}, got
assert got["Code"]["ImageUri"] == IMAGE, got
names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
assert "boto" in names, names

# Invoke: RequestResponse, with the log tail.
answer = client.invoke(FunctionName="boto", Payload=json.dumps({"name": "Ann"}), LogType="Tail")
assert answer["StatusCode"] == 200, answer
body = json.loads(answer["Payload"].read())
assert body["message"] == "Hello Ann!", body
assert "FunctionError" not in answer, answer
logs = base64.b64decode(answer["LogResult"]).decode()
assert "lambda-hello: event" in logs, logs

# A handler that fails: 200 with FunctionError and the error document.
failed = client.invoke(FunctionName="boto", Payload=json.dumps({"fail": "boom"}))
assert failed["StatusCode"] == 200, failed
assert failed["FunctionError"] == "Unhandled", failed
error = json.loads(failed["Payload"].read())
assert "boom" in error.get("errorMessage", ""), error

# DryRun and Event.
dry = client.invoke(FunctionName="boto", InvocationType="DryRun")
assert dry["StatusCode"] == 204, dry
event = client.invoke(FunctionName="boto", InvocationType="Event", Payload=json.dumps({"name": "later"}))
assert event["StatusCode"] == 202, event

# A handler that sleeps past its timeout is stopped.
client.update_function_configuration(FunctionName="boto", Timeout=1)
slow = client.invoke(FunctionName="boto", Payload=json.dumps({"sleep_ms": 3000}))
assert slow.get("FunctionError") == "Unhandled", slow
assert "Sandbox.Timedout" in slow["Payload"].read().decode(), slow

# Update configuration and code.
updated = client.update_function_configuration(FunctionName="boto", MemorySize=192, Timeout=30, Environment={"Variables": {"GREETING": "ho"}})
assert updated["MemorySize"] == 192, updated
assert updated["Environment"]["Variables"] == {"GREETING": "ho"}, updated
client.update_function_code(FunctionName="boto", ImageUri=IMAGE)
again = json.loads(client.invoke(FunctionName="boto", Payload=b"{}")["Payload"].read())
assert again.get("message") == "Hello World!", again

# Unknown functions are AWS errors.
try:
    client.get_function(FunctionName="nope")
    raise AssertionError("an unknown function must fail")
except client.exceptions.ResourceNotFoundException:
    pass

# The AWS CLI, when it is installed.
if subprocess.run(["aws", "--version"], capture_output=True).returncode == 0:
    out = "/tmp/skiff-aws-cli-out.json"
    cli = subprocess.run(
        ["aws", "lambda", "invoke", "--endpoint-url", endpoint, "--region", "us-east-1",
         "--function-name", "boto",
         "--payload", json.dumps({"name": "cli"}), out],
        capture_output=True, text=True,
    )
    assert cli.returncode == 0, cli.stderr
    with open(out) as f:
        assert json.load(f)["message"] == "Hello cli!"
    print("aws cli: ok")

client.delete_function(FunctionName="boto")
try:
    client.get_function(FunctionName="boto")
    raise AssertionError("a deleted function must be gone")
except client.exceptions.ResourceNotFoundException:
    pass
print("boto3 lifecycle: ok")
