#!/usr/bin/env python3
"""TLS listeners with confluent-kafka (librdkafka with OpenSSL) against a
Sluice broker serving PLAINTEXT, SSL and SASL_SSL at once, with
ssl.client.auth=required and certificates from `sluice dev certs`.

Checks: mTLS produce and consume on SSL; SCRAM-SHA-512 and PLAIN logins on
SASL_SSL; each listener's Metadata advertises that listener's port; a
client without a certificate, with a certificate from another CA, trusting
another CA, speaking plaintext to the SSL port or TLS to the plaintext port
is refused, and the PLAINTEXT client goes on working.

Usage: scripts/tls_check.py PLAINTEXT_ADDR SSL_ADDR SASL_SSL_ADDR CERT_DIR OTHER_CERT_DIR USER PASSWORD
Prints PASS/FAIL lines; exits non-zero when anything fails.
"""

import sys
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

TIMEOUT_S = 30
failures = 0


def report(ok, what, detail=""):
    global failures
    if ok:
        print(f"PASS {what}")
    else:
        failures += 1
        print(f"FAIL {what}: {detail}")


def tls(certs, with_client_certificate=True):
    conf = {"ssl.ca.location": f"{certs}/ca.pem"}
    if with_client_certificate:
        conf["ssl.certificate.location"] = f"{certs}/client-cert.pem"
        conf["ssl.key.location"] = f"{certs}/client-key.pem"
    return conf


def round_trip(conf, what):
    topic = f"tls-{uuid.uuid4().hex[:10]}"
    try:
        producer = Producer({**conf, "message.timeout.ms": TIMEOUT_S * 1000})
        errors = []
        producer.produce(topic, value=b"over tls", on_delivery=lambda err, _m: errors.append(err))
        if producer.flush(TIMEOUT_S) or errors[0] is not None:
            raise RuntimeError(f"delivery failed: {errors or 'timed out'}")
        consumer = Consumer({**conf, "group.id": "tls-check"})
        consumer.assign([TopicPartition(topic, 0, 0)])
        try:
            msg = consumer.poll(TIMEOUT_S)
            ok = msg is not None and not msg.error() and msg.value() == b"over tls"
            report(ok, what, msg.error() if msg else "no record")
        finally:
            consumer.close()
    except Exception as e:  # noqa: BLE001 - any failure is a FAIL line
        report(False, what, e)


def advertised_port(conf):
    consumer = Consumer({**conf, "group.id": "tls-metadata"})
    try:
        brokers = consumer.list_topics(timeout=TIMEOUT_S).brokers
        return sorted(b.port for b in brokers.values())
    finally:
        consumer.close()


def refused(conf, what):
    errors = []
    consumer = Consumer({**conf, "group.id": "tls-refused", "error_cb": errors.append, "log_level": 0})
    try:
        consumer.list_topics(timeout=5)
        report(False, what, "metadata was served")
    except KafkaException:
        report(True, what)
    finally:
        consumer.close()


def main():
    plain, ssl, sasl_ssl, certs, other, user, password = sys.argv[1:8]
    ssl_conf = {"bootstrap.servers": ssl, "security.protocol": "SSL", **tls(certs)}
    round_trip(ssl_conf, "confluent-kafka mTLS (SSL, client certificate) produce and consume")
    for mechanism in ["SCRAM-SHA-512", "PLAIN"]:
        round_trip(
            {
                "bootstrap.servers": sasl_ssl,
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": mechanism,
                "sasl.username": user,
                "sasl.password": password,
                **tls(certs),
            },
            f"confluent-kafka SASL_SSL {mechanism} produce and consume",
        )
    for name, conf, addr in [
        ("PLAINTEXT", {"bootstrap.servers": plain}, plain),
        ("SSL", ssl_conf, ssl),
    ]:
        ports = advertised_port(conf)
        want = [int(addr.rsplit(":", 1)[1])]
        report(ports == want, f"Metadata on the {name} listener advertises its own port", f"{ports} != {want}")

    refused({"bootstrap.servers": ssl, "security.protocol": "SSL", **tls(certs, with_client_certificate=False)},
            "SSL without a client certificate refused (ssl.client.auth=required)")
    refused({"bootstrap.servers": ssl, "security.protocol": "SSL", "ssl.ca.location": f"{certs}/ca.pem",
             "ssl.certificate.location": f"{other}/client-cert.pem", "ssl.key.location": f"{other}/client-key.pem"},
            "SSL with a client certificate from another CA refused")
    refused({"bootstrap.servers": ssl, "security.protocol": "SSL", **tls(other)},
            "SSL client that trusts another CA refuses the broker")
    refused({"bootstrap.servers": ssl}, "plaintext client on the SSL port refused")
    refused({"bootstrap.servers": plain, "security.protocol": "SSL", **tls(certs)}, "TLS client on the PLAINTEXT port refused")
    round_trip({"bootstrap.servers": plain}, "PLAINTEXT client unaffected by the refused connections")
    print(f"tls_check: {failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
