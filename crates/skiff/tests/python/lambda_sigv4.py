"""boto3 against skiff's Lambda API with right and wrong credentials: SigV4 is checked.

Usage: python3 lambda_sigv4.py http://127.0.0.1:PORT ACCESS_KEY_ID SECRET
Exits non-zero (with the failed assertion) if anything is off.
"""
import datetime
import sys
from unittest import mock

import boto3
import botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, key_id, secret = sys.argv[1:4]


def client(key, secret):
    return boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def refused(c, code, status=403):
    try:
        c.list_functions()
    except ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err}"
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == status, err.response
        return str(err)
    raise AssertionError(f"expected {code}, but the request was accepted")


# The right key works.
functions = client(key_id, secret).list_functions()["Functions"]
assert isinstance(functions, list), functions

# A wrong secret, an unknown key: refused as AWS refuses them.
message = refused(client(key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")),
                  "InvalidSignatureException")
assert "signature we calculated does not match" in message, message
message = refused(client("AKIAUNKNOWN000000000", secret), "UnrecognizedClientException")
assert "security token included in the request is invalid" in message, message

# A date 20 minutes off the daemon's clock: expired.
real = botocore.auth.get_current_datetime
with mock.patch.object(botocore.auth, "get_current_datetime",
                       lambda: real() - datetime.timedelta(minutes=20)):
    message = refused(client(key_id, secret), "InvalidSignatureException")
assert "Signature expired" in message, message

print("boto3 sigv4: ok")
