#!/usr/bin/env python3
"""SASL_PLAINTEXT logins with confluent-kafka (librdkafka with OpenSSL, so
SCRAM too) against a Sluice broker whose listener is SASL_PLAINTEXT.

For PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512: the right password produces and
reads back a record; a wrong password and an unknown user are refused with
an authentication error, while a logged-in producer goes on working. Then
kafka-python told it talks to Kafka 0.11 logs in with SaslHandshake v0 and
raw SASL tokens (no SaslAuthenticate), produces and reads back, and its
wrong password is refused.

Usage: scripts/sasl_check.py HOST:PORT USER PASSWORD
  USER must have both SCRAM-SHA-256 and SCRAM-SHA-512 credentials.
Prints PASS/FAIL lines; exits non-zero when anything fails.
"""

import sys
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

TIMEOUT_S = 30
failures = 0


def report(ok, what, detail=""):
    global failures
    if ok:
        print(f"PASS {what}")
    else:
        failures += 1
        print(f"FAIL {what}: {detail}")


def config(bootstrap, mechanism, user, password):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def produce(bootstrap, mechanism, user, password, topic, value):
    producer = Producer({**config(bootstrap, mechanism, user, password), "message.timeout.ms": TIMEOUT_S * 1000})
    errors = []
    producer.produce(topic, value=value, on_delivery=lambda err, _msg: errors.append(err))
    left = producer.flush(TIMEOUT_S)
    if left or errors[0] is not None:
        raise RuntimeError(f"delivery failed: {errors or 'timed out'}")
    return producer


def read_back(bootstrap, mechanism, user, password, topic):
    consumer = Consumer({**config(bootstrap, mechanism, user, password), "group.id": "sasl-check"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        msg = consumer.poll(TIMEOUT_S)
        if msg is None or msg.error():
            raise RuntimeError(f"no record: {msg.error() if msg else 'timed out'}")
        return msg.value()
    finally:
        consumer.close()


def refused(bootstrap, mechanism, user, password):
    """The login fails with an authentication error."""
    errors = []
    # error_cb sees the authentication error; the log would repeat it on
    # every reconnect.
    conf = {**config(bootstrap, mechanism, user, password), "error_cb": errors.append, "log_level": 0}
    consumer = Consumer({**conf, "group.id": "sasl-refused"})
    try:
        consumer.list_topics(timeout=5)
        return False, "metadata was served"
    except KafkaException as e:
        for _ in range(10):
            if errors:
                break
            consumer.poll(0.5)
        codes = {err.code() for err in errors}
        if KafkaError._AUTHENTICATION in codes:
            return True, ""
        return False, f"not an authentication error: {errors or e}"
    finally:
        consumer.close()


def kafka_python_v0(bootstrap, mechanism, user, password):
    """kafka-python with api_version=(0, 11, 0): SaslHandshake v0, raw tokens."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError as PyKafkaError

    conf = dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                sasl_plain_username=user, sasl_plain_password=password, api_version=(0, 11, 0))
    what = f"kafka-python {mechanism} over SaslHandshake v0 (raw tokens)"
    topic = f"sasl-v0-{mechanism.lower()}-{uuid.uuid4().hex[:8]}"
    try:
        producer = KafkaProducer(**conf)
        producer.send(topic, b"raw").get(timeout=TIMEOUT_S)
        producer.close()
        consumer = KafkaConsumer(**conf, consumer_timeout_ms=10_000)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = [m.value for m in consumer]
        consumer.close()
        report(got == [b"raw"], f"{what}: produce and consume", got)
    except Exception as e:  # noqa: BLE001
        report(False, f"{what}: produce and consume", e)
    # v0 cannot carry an error: the broker closes the connection, so the
    # client never gets metadata and its send times out.
    bad = KafkaProducer(**{**conf, "sasl_plain_password": password + "x"}, max_block_ms=5000)
    try:
        bad.send(topic, b"refused").get(timeout=10)
        report(False, f"{what}: wrong password refused", "the record was written")
    except PyKafkaError as e:
        report(True, f"{what}: wrong password refused ({type(e).__name__})")
    finally:
        bad.close(timeout=1)


def main():
    bootstrap, user, password = sys.argv[1:4]
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]:
        topic = f"sasl-{mechanism.lower()}-{uuid.uuid4().hex[:8]}"
        try:
            producer = produce(bootstrap, mechanism, user, password, topic, b"first")
            got = read_back(bootstrap, mechanism, user, password, topic)
            report(got == b"first", f"confluent-kafka {mechanism} login, produce and consume", got)
        except Exception as e:  # noqa: BLE001 - any failure is a FAIL line
            report(False, f"confluent-kafka {mechanism} login, produce and consume", e)
            continue
        ok, detail = refused(bootstrap, mechanism, user, password + "x")
        report(ok, f"confluent-kafka {mechanism} wrong password refused", detail)
        ok, detail = refused(bootstrap, mechanism, "nobody-" + uuid.uuid4().hex[:6], password)
        report(ok, f"confluent-kafka {mechanism} unknown user refused", detail)
        producer.produce(topic, value=b"second")
        report(producer.flush(TIMEOUT_S) == 0, f"confluent-kafka {mechanism} logged-in producer unaffected")
        kafka_python_v0(bootstrap, mechanism, user, password)
    print(f"sasl_check: {failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
