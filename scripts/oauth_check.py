#!/usr/bin/env python3
"""SASL OAUTHBEARER with confluent-kafka (librdkafka with OpenSSL) against
two `sluice serve` processes this script starts on SASL_PLAINTEXT:

- the unsecured validator: librdkafka's own unsigned JWTs
  (enable.sasl.oauthbearer.unsecure.jwt) produce and read back a record as
  a super user; another subject logs in but may not produce, so the
  token's subject is the principal;
- signed tokens: an ES256 key made here is published in a JWKS file
  (sasl.oauthbearer.jwks.endpoint.url=file:...); tokens it signs, handed to
  librdkafka by oauth_cb, produce and read back; a token signed by another
  key, an expired one and an unsigned one are refused.

Usage: scripts/oauth_check.py SLUICE_BIN WORKDIR
Prints PASS/FAIL lines; exits non-zero when anything fails.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

TIMEOUT_S = 20
failures = 0


def report(ok, what, detail=""):
    global failures
    if ok:
        print(f"PASS {what}")
    else:
        failures += 1
        print(f"FAIL {what}: {detail}")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An identity provider's ES256 signing key."""

    def __init__(self, kid):
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self):
        numbers = self.key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}

    def token(self, subject, expires):
        header = b64(json.dumps({"alg": "ES256", "typ": "JWT", "kid": self.kid}).encode())
        claims = b64(json.dumps({"sub": subject, "iat": int(time.time()), "exp": int(expires)}).encode())
        der = self.key.sign(f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{header}.{claims}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(sluice, workdir, name, settings):
    port = free_port()
    data = os.path.join(workdir, name)
    os.makedirs(data, exist_ok=True)
    args = [sluice, "serve", "--listen", f"SASL_PLAINTEXT://127.0.0.1:{port}", "--data-dir", data,
            "--set", "http.listeners=", "--set", "sasl.enabled.mechanisms=OAUTHBEARER",
            "--set", "connection.failed.authentication.delay.ms=0",
            "--set", "sasl.failed.authentications.per.ip.per.minute=1000",
            "--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--set", "super.users=User:alice"]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    out = open(os.path.join(data, "broker.out"), "w+")
    log = open(os.path.join(data, "broker.log"), "w")
    process = subprocess.Popen(args, stdout=out, stderr=log)
    deadline = time.time() + 30
    while time.time() < deadline and process.poll() is None:
        out.seek(0)
        if "Sluice broker listening on" in out.read():
            return process, f"127.0.0.1:{port}"
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{name} broker did not start: {open(log.name).read()[-500:]}")


def config(bootstrap, **login):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", **login}


def round_trip(conf, what):
    topic = f"oauth-check-{uuid.uuid4().hex[:8]}"
    try:
        producer = Producer({**conf, "message.timeout.ms": TIMEOUT_S * 1000})
        errors = []
        producer.produce(topic, value=b"with a token", on_delivery=lambda err, _m: errors.append(err))
        if producer.flush(TIMEOUT_S) or errors[0] is not None:
            raise RuntimeError(f"delivery failed: {errors or 'timed out'}")
        consumer = Consumer({**conf, "group.id": "oauth-check"})
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(TIMEOUT_S)
        consumer.close()
        ok = msg is not None and not msg.error() and msg.value() == b"with a token"
        report(ok, what, f"read back {msg.error() if msg else 'nothing'}")
    except Exception as e:  # noqa: BLE001 - report whatever failed
        report(False, what, repr(e))


def refused(conf, what):
    """A client whose token is refused gets an authentication error, not metadata."""
    auth_errors = []
    conf = {**conf, "error_cb": lambda err: auth_errors.append(err)}
    producer = Producer(conf)
    try:
        producer.list_topics(timeout=5)
        report(False, what, "metadata was served")
    except KafkaException:
        producer.poll(1)
        text = " ".join(str(e) for e in auth_errors)
        report("invalid_token" in text or "uthentication" in text, what, text or "no error reported")


def produce_refused(conf, what):
    """A subject without ACLs is refused: its token's subject is the principal."""
    producer = Producer({**conf, "message.timeout.ms": 10_000})
    errors = []
    producer.produce(f"oauth-check-{uuid.uuid4().hex[:8]}", value=b"x",
                     on_delivery=lambda err, _m: errors.append(err))
    producer.flush(15)
    text = str(errors[0]) if errors else "no delivery report"
    report(bool(errors) and errors[0] is not None and "AUTHORIZATION" in text.upper(), what, text)


def main():
    sluice, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    processes = []
    try:
        unsecured, bootstrap = start_broker(sluice, workdir, "oauth-unsecured", {})
        processes.append(unsecured)
        unsigned = lambda subject: config(bootstrap, **{  # noqa: E731
            "enable.sasl.oauthbearer.unsecure.jwt": "true",
            "sasl.oauthbearer.config": f"principal={subject}"})
        round_trip(unsigned("alice"), "confluent-kafka unsecured JWT: produce and read back as alice")
        produce_refused(unsigned("bob"), "confluent-kafka unsecured JWT: bob, without ACLs, may not produce")

        issuer = Issuer("key-1")
        jwks = os.path.join(workdir, "jwks.json")
        with open(jwks, "w") as f:
            json.dump({"keys": [issuer.jwk()]}, f)
        signed, bootstrap = start_broker(sluice, workdir, "oauth-signed",
                                         {"sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}"})
        processes.append(signed)
        hour = time.time() + 3600

        def with_token(token):
            return config(bootstrap, oauth_cb=lambda _cfg: (token, hour))

        round_trip(with_token(issuer.token("alice", hour)), "confluent-kafka ES256 token checked against the JWKS")
        refused(with_token(Issuer("key-1").token("alice", hour)), "a token signed by another key is refused")
        refused(with_token(issuer.token("alice", time.time() - 3600)), "an expired token is refused")
        refused(config(bootstrap, **{"enable.sasl.oauthbearer.unsecure.jwt": "true",
                                     "sasl.oauthbearer.config": "principal=alice"}),
                "an unsigned token is refused where signatures are checked")
    except Exception as e:  # noqa: BLE001
        report(False, "OAUTHBEARER checks", repr(e))
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
