package dev.sluice.interop;

import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka Java clients configured for a test broker, and the waiting loops the
 * tests share. Timeouts are short: against a local broker anything slower
 * than a few seconds is a failure worth seeing, not something to wait out.
 */
final class Clients {

    /** How long a test waits for a condition (an assignment, records) to come true. */
    static final Duration WAIT = Duration.ofSeconds(30);
    private static final Duration POLL = Duration.ofMillis(100);

    private Clients() {
    }

    static Admin admin(SluiceBroker broker) {
        return Admin.create(Map.of(
                AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers(),
                AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000,
                AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 15_000));
    }

    /** Producer settings, {@code overrides} winning; acks=all and idempotence are the client's defaults. */
    static Map<String, Object> producerConfig(SluiceBroker broker, Map<String, Object> overrides) {
        Map<String, Object> config = new HashMap<>(Map.of(
                ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers(),
                ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000,
                ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 20_000,
                ProducerConfig.MAX_BLOCK_MS_CONFIG, 15_000));
        config.putAll(overrides);
        return config;
    }

    /** Consumer settings, {@code overrides} winning; reads from the earliest offset when nothing is committed. */
    static Map<String, Object> consumerConfig(SluiceBroker broker, Map<String, Object> overrides) {
        Map<String, Object> config = new HashMap<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers(),
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, 10_000,
                CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG, 15_000));
        config.putAll(overrides);
        return config;
    }

    static KafkaProducer<String, String> producer(SluiceBroker broker, Map<String, Object> overrides) {
        return new KafkaProducer<>(producerConfig(broker, overrides), new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(SluiceBroker broker, Map<String, Object> overrides) {
        return new KafkaConsumer<>(consumerConfig(broker, overrides), new StringDeserializer(), new StringDeserializer());
    }

    static void createTopic(Admin admin, String name, int partitions) {
        createTopic(admin, new NewTopic(name, partitions, (short) 1));
    }

    static void createTopic(Admin admin, NewTopic topic) {
        get(admin.createTopics(List.of(topic)).all());
    }

    /** Sends {@code count} records {@code key-i}/{@code value-i} round-robin over the topic's partitions and waits for all acks. */
    static void produceStrings(SluiceBroker broker, String topic, int count) {
        try (KafkaProducer<String, String> producer = producer(broker, Map.of())) {
            for (int i = 0; i < count; i++) {
                producer.send(new ProducerRecord<>(topic, "key-" + i, "value-" + i));
            }
            producer.flush();
        }
    }

    /**
     * Reads the assigned partitions from the beginning up to their end offsets
     * as of the call (for read_committed, the last stable offset), so a test
     * sees every record there is, extra ones included.
     */
    static <K, V> List<ConsumerRecord<K, V>> readAssignedToEnd(Consumer<K, V> consumer) {
        consumer.seekToBeginning(consumer.assignment());
        Map<TopicPartition, Long> end = consumer.endOffsets(consumer.assignment());
        List<ConsumerRecord<K, V>> records = new ArrayList<>();
        awaitPolling(consumer, "reading to the end offsets " + end,
                () -> end.entrySet().stream().allMatch(e -> consumer.position(e.getKey()) >= e.getValue()),
                records);
        return records;
    }

    /** Polls a subscribed consumer, collecting records, until it holds at least {@code count}. */
    static <K, V> List<ConsumerRecord<K, V>> pollUntilCount(Consumer<K, V> consumer, int count) {
        List<ConsumerRecord<K, V>> records = new ArrayList<>();
        awaitPolling(consumer, count + " records", () -> records.size() >= count, records);
        return records;
    }

    /** Polls (which drives the group protocol) until {@code condition} holds; fails after {@link #WAIT}. */
    static void pollUntil(Consumer<?, ?> consumer, String what, BooleanSupplier condition) {
        awaitPolling(consumer, what, condition, new ArrayList<>());
    }

    private static <K, V> void awaitPolling(Consumer<K, V> consumer, String what, BooleanSupplier condition,
            List<ConsumerRecord<K, V>> sink) {
        Instant deadline = Instant.now().plus(WAIT);
        while (!condition.getAsBoolean()) {
            if (Instant.now().isAfter(deadline)) {
                fail("timed out after " + WAIT + " waiting for " + what + "; got " + sink.size() + " records");
            }
            consumer.poll(POLL).forEach(sink::add);
        }
    }

    /** Waits for a condition that needs no polling (e.g. admin state); fails after {@link #WAIT}. */
    static void await(String what, BooleanSupplier condition) {
        Instant deadline = Instant.now().plus(WAIT);
        while (!condition.getAsBoolean()) {
            if (Instant.now().isAfter(deadline)) {
                fail("timed out after " + WAIT + " waiting for " + what);
            }
            sleep(POLL);
        }
    }

    /** A future's value; its failure rethrown unwrapped so assertThrows sees Kafka's exception type. */
    static <T> T get(KafkaFuture<T> future) {
        try {
            return future.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException runtime) {
                throw runtime;
            }
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static void sleep(Duration duration) {
        try {
            Thread.sleep(duration.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
