package dev.sluice.interop;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The idempotent producer with every codec the Java client has: what goes in
 * comes back out byte for byte, at dense offsets, with the producer's
 * sequence state visible to DescribeProducers.
 */
class IdempotentCompressionTest {

    @RegisterExtension
    static final SluiceBroker BROKER = new SluiceBroker();

    private static final int RECORDS = 3_000;
    private static Admin admin;

    @BeforeAll
    static void openAdmin() {
        admin = Clients.admin(BROKER);
    }

    @AfterAll
    static void closeAdmin() {
        admin.close();
    }

    @ParameterizedTest(name = "compression.type={0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void recordsComeBackExactly(String codec) throws Exception {
        String topic = "idempotent-" + codec;
        Clients.createTopic(admin, topic, 1);
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, codec.hashCode());

        List<RecordMetadata> acks = produce(codec, sent);

        for (int i = 0; i < acks.size(); i++) {
            assertEquals(i, acks.get(i).offset(), "offsets are dense and in send order");
        }
        assertRecordsEqual(sent, readBack(topic));
        ProducerState producer = onlyProducer(new TopicPartition(topic, 0));
        assertEquals(RECORDS - 1, producer.lastSequence(), "last sequence is that of the last record sent");
    }

    /** The topic's compression.type differs from the producer's: the broker recompresses, the data must not change. */
    @Test
    void brokerRecompressionKeepsRecords() throws Exception {
        String topic = "recompressed";
        Clients.createTopic(admin, new NewTopic(topic, 1, (short) 1).configs(Map.of("compression.type", "zstd")));
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, 7);

        produce("gzip", sent);

        assertRecordsEqual(sent, readBack(topic));
    }

    /**
     * Compressible and incompressible values, some null keys, null values and
     * an empty value, so each codec sees more than one kind of input.
     */
    private static List<ProducerRecord<byte[], byte[]>> records(String topic, long seed) {
        Random random = new Random(seed);
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < RECORDS; i++) {
            byte[] key = i % 10 == 0 ? null : ("key-" + i).getBytes(StandardCharsets.UTF_8);
            byte[] value;
            if (i % 3 == 0) {
                value = new byte[random.nextInt(200)];
                random.nextBytes(value);
            } else if (i % 97 == 0) {
                value = i % 2 == 0 ? null : new byte[0];
            } else {
                value = ("value " + i + " ").repeat(1 + i % 20).getBytes(StandardCharsets.UTF_8);
            }
            records.add(new ProducerRecord<>(topic, 0, 1_700_000_000_000L + i, key, value));
        }
        return records;
    }

    private static List<RecordMetadata> produce(String codec, List<ProducerRecord<byte[], byte[]>> records)
            throws Exception {
        Map<String, Object> config = Clients.producerConfig(BROKER, Map.of(
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                // Small batches and a linger, so the records span many batches,
                // several of them in flight at once.
                ProducerConfig.BATCH_SIZE_CONFIG, 16_384,
                ProducerConfig.LINGER_MS_CONFIG, 5,
                ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5));
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer())) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (ProducerRecord<byte[], byte[]> record : records) {
                futures.add(producer.send(record));
            }
            List<RecordMetadata> acks = new ArrayList<>();
            for (Future<RecordMetadata> future : futures) {
                acks.add(future.get());
            }
            return acks;
        }
    }

    private static List<ConsumerRecord<byte[], byte[]>> readBack(String topic) {
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
                Clients.consumerConfig(BROKER, Map.of()), new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            consumer.assign(List.of(new TopicPartition(topic, 0)));
            return Clients.readAssignedToEnd(consumer);
        }
    }

    private static void assertRecordsEqual(List<ProducerRecord<byte[], byte[]>> sent,
            List<ConsumerRecord<byte[], byte[]>> received) {
        assertEquals(sent.size(), received.size(), "record count");
        for (int i = 0; i < sent.size(); i++) {
            ProducerRecord<byte[], byte[]> expected = sent.get(i);
            ConsumerRecord<byte[], byte[]> actual = received.get(i);
            assertEquals(i, actual.offset(), "offset of record " + i);
            assertArrayEquals(expected.key(), actual.key(), "key of record " + i);
            assertArrayEquals(expected.value(), actual.value(), "value of record " + i);
            assertEquals(expected.timestamp(), actual.timestamp(), "timestamp of record " + i);
        }
    }

    private static ProducerState onlyProducer(TopicPartition partition) {
        List<ProducerState> producers =
                Clients.get(admin.describeProducers(List.of(partition)).partitionResult(partition)).activeProducers();
        assertEquals(1, producers.size(), "one idempotent producer wrote " + partition + ": " + producers);
        assertTrue(producers.get(0).producerId() >= 0, "a real producer id: " + producers.get(0));
        return producers.get(0);
    }
}
