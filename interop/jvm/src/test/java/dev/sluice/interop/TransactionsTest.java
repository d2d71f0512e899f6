package dev.sluice.interop;

import static dev.sluice.interop.Clients.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Transactions as the Kafka 4.3 client runs them by default: transactions v2
 * (KIP-890), where Produce and TxnOffsetCommit add their partitions and every
 * EndTxn bumps the producer epoch. Visibility is checked with read_committed
 * and read_uncommitted consumers reading to the end of the log.
 */
class TransactionsTest {

    /** Times out abandoned transactions within a second instead of Kafka's 10 s check interval. */
    @RegisterExtension
    static final SluiceBroker BROKER = new SluiceBroker(Map.of(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms", "500"));

    private static Admin admin;

    @BeforeAll
    static void openAdmin() {
        admin = Clients.admin(BROKER);
    }

    @AfterAll
    static void closeAdmin() {
        admin.close();
    }

    @Test
    void transactionsV2IsFinalizedAndEveryEndTxnBumpsTheEpoch() {
        FinalizedVersionRange version =
                get(admin.describeFeatures().featureMetadata()).finalizedFeatures().get("transaction.version");
        assertEquals(2, version.maxVersionLevel(), "transaction.version finalized: " + version);

        Clients.createTopic(admin, "txn-epochs", 1);
        try (KafkaProducer<String, String> producer = transactionalProducer("txn-epochs")) {
            producer.initTransactions();
            int initial = describe("txn-epochs").producerEpoch();

            producer.beginTransaction();
            producer.send(new ProducerRecord<>("txn-epochs", "k", "committed"));
            producer.commitTransaction();
            assertEquals(initial + 1, describe("txn-epochs").producerEpoch(), "commit bumps the epoch");

            producer.beginTransaction();
            producer.send(new ProducerRecord<>("txn-epochs", "k", "aborted"));
            producer.abortTransaction();
            assertEquals(initial + 2, describe("txn-epochs").producerEpoch(), "abort bumps the epoch");
        }
    }

    @Test
    void readCommittedSeesCommittedRecordsOnly() {
        String topic = "txn-visibility";
        Clients.createTopic(admin, topic, 2);
        List<String> aborted = new ArrayList<>();
        List<String> committed = new ArrayList<>();
        List<String> open = new ArrayList<>();
        try (KafkaProducer<String, String> producer = transactionalProducer("txn-visibility");
                KafkaProducer<String, String> openProducer = transactionalProducer("txn-visibility-open")) {
            producer.initTransactions();
            runTransaction(producer, topic, "aborted", aborted);
            producer.abortTransaction();
            runTransaction(producer, topic, "committed", committed);
            producer.commitTransaction();
            // Left open: read_committed must stop before it (the last stable offset).
            openProducer.initTransactions();
            runTransaction(openProducer, topic, "open", open);

            assertEquals(sorted(committed), sorted(values(readAll(topic, "read_committed"))));
            assertEquals(sorted(concat(aborted, committed, open)), sorted(values(readAll(topic, "read_uncommitted"))));

            openProducer.commitTransaction();
        }
        assertEquals(sorted(concat(committed, open)), sorted(values(readAll(topic, "read_committed"))));
    }

    /** Consume-transform-produce: the group's offsets commit and abort with the output records. */
    @Test
    void sendOffsetsToTransactionCommitsOffsetsWithTheOutput() {
        String input = "txn-input";
        String output = "txn-output";
        String group = "txn-copier";
        TopicPartition inputPartition = new TopicPartition(input, 0);
        Clients.createTopic(admin, input, 1);
        Clients.createTopic(admin, output, 1);
        Clients.produceStrings(BROKER, input, 10);

        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER, Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, group,
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"));
                KafkaProducer<String, String> producer = transactionalProducer("txn-copier")) {
            consumer.subscribe(List.of(input));
            List<ConsumerRecord<String, String>> records = Clients.pollUntilCount(consumer, 10);
            producer.initTransactions();

            copy(producer, consumer, records.subList(0, 5), output);
            producer.flush(); // so the aborted copies are in the log, not dropped unsent
            producer.abortTransaction();
            assertNull(committedOffsets(group).get(inputPartition), "an aborted transaction commits no offset");
            assertEquals(List.of(), values(readAll(output, "read_committed")));

            copy(producer, consumer, records, output);
            producer.commitTransaction();
            assertEquals(10, committedOffsets(group).get(inputPartition).offset());
        }
        List<String> copied = values(readAll(output, "read_committed"));
        assertEquals(10, copied.size(), "one copy of each input record: " + copied);
        for (int i = 0; i < 10; i++) {
            assertEquals("copy of value-" + i, copied.get(i));
        }
    }

    /** A new producer with the same transactional id aborts the old one's transaction and fences it. */
    @Test
    void newInstanceFencesTheOldAndAbortsItsTransaction() {
        String topic = "txn-zombie";
        Clients.createTopic(admin, topic, 1);
        try (KafkaProducer<String, String> zombie = transactionalProducer("txn-zombie");
                KafkaProducer<String, String> successor = transactionalProducer("txn-zombie")) {
            zombie.initTransactions();
            zombie.beginTransaction();
            zombie.send(new ProducerRecord<>(topic, "k", "zombie"));
            zombie.flush();

            successor.initTransactions();
            successor.beginTransaction();
            successor.send(new ProducerRecord<>(topic, "k", "successor"));
            successor.commitTransaction();

            assertThrows(ProducerFencedException.class, zombie::commitTransaction);
        }
        assertEquals(List.of("successor"), values(readAll(topic, "read_committed")));
    }

    /** An abandoned transaction is aborted by the broker after transaction.timeout.ms. */
    @Test
    void timedOutTransactionIsAbortedByTheBroker() {
        String topic = "txn-timeout";
        Clients.createTopic(admin, topic, 1);
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER, Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, "txn-timeout",
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 1_000))) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, "k", "abandoned"));
            producer.flush();

            Clients.await("the broker to abort the timed-out transaction",
                    () -> describe("txn-timeout").state() == TransactionState.COMPLETE_ABORT);
        }
        try (KafkaConsumer<String, String> consumer =
                Clients.consumer(BROKER, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            TopicPartition partition = new TopicPartition(topic, 0);
            consumer.assign(List.of(partition));
            assertEquals(List.of(), Clients.readAssignedToEnd(consumer));
            assertTrue(consumer.position(partition) > 0, "the last stable offset moved past the aborted record");
        }
    }

    private static KafkaProducer<String, String> transactionalProducer(String transactionalId) {
        return Clients.producer(BROKER, Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId));
    }

    /**
     * Begins a transaction and writes 20 records, {@code prefix-i}, spread over
     * the topic's partitions by key. Flushed, because an abort drops the
     * batches not sent yet, and the aborted records must be in the log.
     */
    private static void runTransaction(KafkaProducer<String, String> producer, String topic, String prefix,
            List<String> sent) {
        producer.beginTransaction();
        for (int i = 0; i < 20; i++) {
            String value = prefix + "-" + i;
            producer.send(new ProducerRecord<>(topic, "key-" + i, value));
            sent.add(value);
        }
        producer.flush();
    }

    /** In a new transaction, sends a copy of each record and the consumer's next offsets. */
    private static void copy(KafkaProducer<String, String> producer, KafkaConsumer<String, String> consumer,
            List<ConsumerRecord<String, String>> records, String output) {
        producer.beginTransaction();
        for (ConsumerRecord<String, String> record : records) {
            producer.send(new ProducerRecord<>(output, record.key(), "copy of " + record.value()));
        }
        ConsumerRecord<String, String> last = records.get(records.size() - 1);
        producer.sendOffsetsToTransaction(
                Map.of(new TopicPartition(last.topic(), last.partition()), new OffsetAndMetadata(last.offset() + 1)),
                consumer.groupMetadata());
    }

    private static List<ConsumerRecord<String, String>> readAll(String topic, String isolationLevel) {
        try (KafkaConsumer<String, String> consumer =
                Clients.consumer(BROKER, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolationLevel))) {
            List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
                    .map(p -> new TopicPartition(topic, p.partition())).toList();
            consumer.assign(partitions);
            return Clients.readAssignedToEnd(consumer);
        }
    }

    private static List<String> values(List<ConsumerRecord<String, String>> records) {
        return records.stream().map(ConsumerRecord::value).toList();
    }

    @SafeVarargs
    private static List<String> concat(List<String>... lists) {
        return Stream.of(lists).flatMap(List::stream).toList();
    }

    private static List<String> sorted(List<String> values) {
        return values.stream().sorted().toList();
    }

    private static TransactionDescription describe(String transactionalId) {
        return get(admin.describeTransactions(List.of(transactionalId)).description(transactionalId));
    }

    private static Map<TopicPartition, OffsetAndMetadata> committedOffsets(String group) {
        return get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    }
}
