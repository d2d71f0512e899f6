package dev.sluice.interop;

import static dev.sluice.interop.Clients.get;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.LogTruncationException;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Per-record features beyond key and value: timestamps (and looking offsets up by them), headers, and
 * the leader epochs positions carry.
 */
class RecordFeaturesTest {

    @RegisterExtension
    static final SluiceBroker BROKER = new SluiceBroker();

    /** Record i is stamped BASE + i seconds: recent, so within the broker's accepted timestamp range. */
    private static final long BASE = System.currentTimeMillis() - Duration.ofHours(1).toMillis();
    private static final long STEP = 1_000;
    private static Admin admin;

    @BeforeAll
    static void openAdmin() {
        admin = Clients.admin(BROKER);
    }

    @AfterAll
    static void closeAdmin() {
        admin.close();
    }

    /**
     * The Java client validates a position that carries a leader epoch with
     * OffsetForLeaderEpoch (KIP-320): a position past where its epoch ends is
     * log truncation (what a consumer sees when a leader change lost records
     * it had read), a position inside it is kept.
     */
    @Test
    void aPositionPastTheEndOfItsLeaderEpochIsReportedAsTruncation() {
        String topic = "epoch-validation";
        TopicPartition partition = new TopicPartition(topic, 0);
        Clients.createTopic(admin, topic, 1);
        Clients.produceStrings(BROKER, topic, 6);
        try (KafkaConsumer<String, String> consumer =
                Clients.consumer(BROKER, Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none"))) {
            consumer.assign(List.of(partition));
            consumer.seek(partition, new OffsetAndMetadata(100, Optional.of(0), ""));
            LogTruncationException truncation = assertThrows(LogTruncationException.class, () -> {
                long deadline = System.nanoTime() + Clients.WAIT.toNanos();
                while (System.nanoTime() < deadline) {
                    consumer.poll(Duration.ofMillis(100));
                }
            });
            assertEquals(6, truncation.divergentOffsets().get(partition).offset(), "epoch 0 ends at the log end");

            consumer.seek(partition, new OffsetAndMetadata(3, Optional.of(0), ""));
            List<ConsumerRecord<String, String>> rest = Clients.pollUntilCount(consumer, 3);
            assertEquals("value-3", rest.get(0).value(), "a valid position is kept");
        }
    }

    @Test
    void offsetsForTimesFindsTheFirstRecordAtOrAfterATimestamp() {
        String topic = "timestamps";
        TopicPartition partition = new TopicPartition(topic, 0);
        Clients.createTopic(admin, topic, 1);
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER, Map.of())) {
            for (int i = 0; i < 100; i++) {
                producer.send(new ProducerRecord<>(topic, 0, BASE + i * STEP, "k", "at-" + i));
            }
            producer.flush();
        }

        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER, Map.of())) {
            consumer.assign(List.of(partition));
            OffsetAndTimestamp between = offsetForTime(consumer, partition, BASE + 41 * STEP + 500);
            assertEquals(42, between.offset(), "a time between records finds the next one");
            assertEquals(BASE + 42 * STEP, between.timestamp());
            assertEquals(70, offsetForTime(consumer, partition, BASE + 70 * STEP).offset(), "an exact time");
            assertEquals(0, offsetForTime(consumer, partition, BASE - 60_000).offset(), "before the first");
            assertNull(offsetForTime(consumer, partition, BASE + 1_000 * STEP), "after the last: no offset");

            consumer.seek(partition, between.offset());
            ConsumerRecord<String, String> first = Clients.pollUntilCount(consumer, 1).get(0);
            assertEquals("at-42", first.value());
            assertEquals(BASE + 42 * STEP, first.timestamp());
        }
        ListOffsetsResultInfo newest =
                get(admin.listOffsets(Map.of(partition, OffsetSpec.maxTimestamp())).partitionResult(partition));
        assertEquals(99, newest.offset(), "max-timestamp names the newest record");
        assertEquals(BASE + 99 * STEP, newest.timestamp());
    }

    /** Headers come back in order, duplicate keys, null and empty values and non-ASCII keys included. */
    @Test
    void headersRoundTrip() {
        String topic = "headers";
        Clients.createTopic(admin, topic, 1);
        List<Header> sent = List.of(
                new RecordHeader("trace-id", bytes("abc-123")),
                new RecordHeader("retry", bytes("1")),
                new RecordHeader("retry", bytes("2")),
                new RecordHeader("null-value", null),
                new RecordHeader("empty-value", new byte[0]),
                new RecordHeader("clé-ünïcode-キー", bytes("välue")),
                new RecordHeader("binary", new byte[] {0, -1, 127, -128}));
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER, Map.of())) {
            producer.send(new ProducerRecord<>(topic, 0, "with", "headers", new RecordHeaders(sent)));
            producer.send(new ProducerRecord<>(topic, 0, "without", "headers"));
            producer.flush();
        }

        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER, Map.of())) {
            consumer.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<String, String>> records = Clients.readAssignedToEnd(consumer);
            assertEquals(2, records.size());
            Header[] received = records.get(0).headers().toArray();
            assertEquals(sent.size(), received.length, "header count");
            for (int i = 0; i < sent.size(); i++) {
                assertEquals(sent.get(i).key(), received[i].key(), "key of header " + i);
                assertArrayEquals(sent.get(i).value(), received[i].value(), "value of header " + i);
            }
            assertEquals(0, records.get(1).headers().toArray().length, "a record without headers has none");
        }
    }

    private static OffsetAndTimestamp offsetForTime(KafkaConsumer<?, ?> consumer, TopicPartition partition,
            long timestamp) {
        return consumer.offsetsForTimes(Map.of(partition, timestamp)).get(partition);
    }

    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }
}
