package dev.sluice.interop;

import static dev.sluice.interop.Clients.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.InvalidReplicaAssignmentException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The Admin client's operations against Sluice, each checked through a second API that observes its effect. */
class AdminTest {

    @RegisterExtension
    static final SluiceBroker BROKER = new SluiceBroker();

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
    void createListDescribeAndDeleteTopics() {
        get(admin.createTopics(List.of(
                new NewTopic("admin-a", 3, (short) 1),
                new NewTopic("admin-b", 1, (short) 1).configs(Map.of("cleanup.policy", "compact")))).all());

        assertTrue(topicNames().containsAll(Set.of("admin-a", "admin-b")), "both topics listed");
        TopicDescription a = get(admin.describeTopics(List.of("admin-a")).topicNameValues().get("admin-a"));
        assertEquals(3, a.partitions().size());
        assertFalse(a.topicId().toString().isEmpty(), "topic id");
        assertEquals("compact", topicConfig("admin-b").get("cleanup.policy").value());
        assertThrows(TopicExistsException.class,
                () -> get(admin.createTopics(List.of(new NewTopic("admin-a", 1, (short) 1))).all()));

        get(admin.deleteTopics(List.of("admin-a")).all());

        Clients.await("admin-a gone from the topic list", () -> !topicNames().contains("admin-a"));
        assertTrue(topicNames().contains("admin-b"), "the other topic stays");
        assertThrows(UnknownTopicOrPartitionException.class,
                () -> get(admin.describeTopics(List.of("admin-a")).allTopicNames()));
    }

    /** Metadata by topic id (v10+), as consumers use it to name the topics of a KIP-848 assignment. */
    @Test
    void describeTopicsByTopicId() {
        Clients.createTopic(admin, "admin-by-id", 2);
        Uuid id = get(admin.describeTopics(List.of("admin-by-id")).topicNameValues().get("admin-by-id")).topicId();

        TopicDescription byId = get(admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds()).get(id);

        assertEquals("admin-by-id", byId.name());
        assertEquals(2, byId.partitions().size());
    }

    @Test
    void createPartitionsGrowsATopicAndNeverShrinksIt() {
        Clients.createTopic(admin, "admin-grow", 1);

        get(admin.createPartitions(Map.of("admin-grow", NewPartitions.increaseTo(3))).all());

        assertEquals(3, partitionCount("admin-grow"));
        assertThrows(InvalidPartitionsException.class,
                () -> get(admin.createPartitions(Map.of("admin-grow", NewPartitions.increaseTo(2))).all()));
        assertEquals(3, partitionCount("admin-grow"));
    }

    @Test
    void describeConfigsShowsDefaultsAndIncrementalAlterConfigsChangesThem() {
        Clients.createTopic(admin, "admin-configs", 1);
        ConfigEntry retention = topicConfig("admin-configs").get("retention.ms");
        assertEquals("604800000", retention.value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, retention.source());

        alterTopicConfig("admin-configs",
                new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", "2000000"), AlterConfigOp.OpType.SET));

        Config altered = topicConfig("admin-configs");
        assertEquals("3600000", altered.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, altered.get("retention.ms").source());
        assertEquals(Set.of("delete", "compact"), listValue(altered.get("cleanup.policy")));
        assertEquals("2000000", altered.get("max.message.bytes").value());

        alterTopicConfig("admin-configs",
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.SUBTRACT),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", ""), AlterConfigOp.OpType.DELETE));

        Config reverted = topicConfig("admin-configs");
        assertEquals(Set.of("compact"), listValue(reverted.get("cleanup.policy")));
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, reverted.get("max.message.bytes").source());
        assertEquals("3600000", reverted.get("retention.ms").value(), "an untouched override stays");
    }

    @Test
    void dynamicBrokerConfigIsDescribedAndInheritedByTopics() {
        ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(onlyNode().id()));
        Clients.createTopic(admin, "admin-inherits", 1);
        try {
            get(admin.incrementalAlterConfigs(Map.of(broker, List.of(
                    new AlterConfigOp(new ConfigEntry("log.retention.ms", "7200000"), AlterConfigOp.OpType.SET))))
                    .all());

            // Kafka applies broker config changes asynchronously (through its
            // metadata log), so they may show a moment later.
            Clients.await("the broker to show its new log.retention.ms",
                    () -> "7200000".equals(config(broker).get("log.retention.ms").value()));
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, config(broker).get("log.retention.ms").source());
            Clients.await("the topic to follow the broker's log.retention.ms",
                    () -> "7200000".equals(topicConfig("admin-inherits").get("retention.ms").value()));
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG,
                    topicConfig("admin-inherits").get("retention.ms").source());
        } finally {
            get(admin.incrementalAlterConfigs(Map.of(broker, List.of(
                    new AlterConfigOp(new ConfigEntry("log.retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                    .all());
        }
        Clients.await("the topic's retention.ms back to the default",
                () -> "604800000".equals(topicConfig("admin-inherits").get("retention.ms").value()));
    }

    @Test
    void describeClusterNamesThisBroker() {
        DescribeClusterResult cluster = admin.describeCluster();
        Node node = onlyNode();

        assertEquals(BROKER.bootstrapServers(), node.host() + ":" + node.port());
        assertEquals(node, get(cluster.controller()), "a single node is its own controller");
        String clusterId = get(cluster.clusterId());
        assertNotNull(clusterId);
        assertFalse(clusterId.isBlank());
    }

    @Test
    void consumerGroupLifecycle() {
        String topic = "admin-group-topic";
        String group = "admin-group";
        TopicPartition partition = new TopicPartition(topic, 0);
        Clients.createTopic(admin, topic, 1);
        Clients.produceStrings(BROKER, topic, 10);

        try (KafkaConsumer<String, String> consumer =
                Clients.consumer(BROKER, Map.of(ConsumerConfig.GROUP_ID_CONFIG, group))) {
            consumer.subscribe(List.of(topic));
            Clients.pollUntilCount(consumer, 10);
            consumer.commitSync(Map.of(partition, new OffsetAndMetadata(7, "seven")));

            ConsumerGroupDescription active = describeGroup(group);
            assertEquals(GroupState.STABLE, active.groupState());
            assertEquals(GroupType.CLASSIC, active.type());
            MemberDescription member = onlyElement(active.members());
            assertEquals(Set.of(partition), member.assignment().topicPartitions());
        }

        GroupListing listing = onlyElement(listConsumerGroups().stream()
                .filter(g -> g.groupId().equals(group)).toList());
        assertEquals(Optional.of(GroupState.EMPTY), listing.groupState());
        assertEquals(GroupState.EMPTY, describeGroup(group).groupState());
        assertEquals(new OffsetAndMetadata(7, "seven"), committedOffsets(group).get(partition));

        get(admin.alterConsumerGroupOffsets(group, Map.of(partition, new OffsetAndMetadata(3))).all());
        assertEquals(3, committedOffsets(group).get(partition).offset());

        get(admin.deleteConsumerGroupOffsets(group, Set.of(partition)).all());
        assertNull(committedOffsets(group).get(partition), "offset deleted");

        get(admin.deleteConsumerGroups(List.of(group)).all());
        assertFalse(listConsumerGroups().stream().anyMatch(g -> g.groupId().equals(group)), "group deleted");
        assertThrows(GroupIdNotFoundException.class, () -> get(admin.deleteConsumerGroups(List.of(group)).all()));
    }

    /** KIP-455 on one broker: a move onto the replicas it has, refusals with Kafka's exceptions, nothing listed. */
    @Test
    void partitionReassignmentsAreValidatedAndListed() {
        Clients.createTopic(admin, "admin-reassign", 2);
        TopicPartition p0 = new TopicPartition("admin-reassign", 0);
        TopicPartition p1 = new TopicPartition("admin-reassign", 1);
        int node = onlyNode().id();
        get(admin.alterPartitionReassignments(
                Map.of(p0, Optional.of(new NewPartitionReassignment(List.of(node))))).all());
        assertThrows(InvalidReplicaAssignmentException.class, () -> get(admin.alterPartitionReassignments(
                Map.of(p0, Optional.of(new NewPartitionReassignment(List.of(4242))))).all()));
        assertThrows(InvalidReplicaAssignmentException.class, () -> get(admin.alterPartitionReassignments(
                Map.of(p0, Optional.of(new NewPartitionReassignment(List.of(node, node))))).all()));
        assertThrows(NoReassignmentInProgressException.class, () -> get(admin.alterPartitionReassignments(
                Map.of(p1, Optional.<NewPartitionReassignment>empty())).all()));
        assertThrows(UnknownTopicOrPartitionException.class, () -> get(admin.alterPartitionReassignments(
                Map.of(new TopicPartition("admin-reassign", 9),
                        Optional.of(new NewPartitionReassignment(List.of(node))))).all()));
        assertTrue(get(admin.listPartitionReassignments().reassignments()).isEmpty());
        assertTrue(get(admin.listPartitionReassignments(Set.of(p0, p1)).reassignments()).isEmpty());
        assertEquals(List.of(node), get(admin.describeTopics(List.of("admin-reassign")).allTopicNames())
                .get("admin-reassign").partitions().get(0).replicas().stream().map(Node::id).toList());
    }

    @Test
    void deleteRecordsAdvancesTheLogStartOffset() {
        String topic = "admin-delete-records";
        TopicPartition partition = new TopicPartition(topic, 0);
        Clients.createTopic(admin, topic, 1);
        Clients.produceStrings(BROKER, topic, 10);

        long lowWatermark = get(admin.deleteRecords(Map.of(partition, RecordsToDelete.beforeOffset(4)))
                .lowWatermarks().get(partition)).lowWatermark();

        assertEquals(4, lowWatermark);
        assertEquals(4, get(admin.listOffsets(Map.of(partition, OffsetSpec.earliest())).partitionResult(partition))
                .offset());
        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER, Map.of())) {
            consumer.assign(List.of(partition));
            List<ConsumerRecord<String, String>> records = Clients.readAssignedToEnd(consumer);
            assertEquals(List.of(4L, 5L, 6L, 7L, 8L, 9L), records.stream().map(ConsumerRecord::offset).toList());
        }
        assertThrows(OffsetOutOfRangeException.class, () -> get(
                admin.deleteRecords(Map.of(partition, RecordsToDelete.beforeOffset(11))).all()),
                "cannot delete past the high watermark");
    }

    @Test
    void openTransactionIsListedDescribedAndShownByDescribeProducers() throws Exception {
        String topic = "admin-txn-topic";
        String transactionalId = "admin-txn";
        TopicPartition partition = new TopicPartition(topic, 0);
        Clients.createTopic(admin, topic, 1);
        Clients.produceStrings(BROKER, topic, 2);

        try (KafkaProducer<String, String> producer = Clients.producer(BROKER,
                Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId))) {
            producer.initTransactions();
            producer.beginTransaction();
            long firstOffset = producer.send(new ProducerRecord<>(topic, 0, "k", "in txn")).get().offset();

            TransactionListing listing = onlyElement(get(admin.listTransactions().all()).stream()
                    .filter(t -> t.transactionalId().equals(transactionalId)).toList());
            assertEquals(TransactionState.ONGOING, listing.state());
            TransactionDescription open = describeTransaction(transactionalId);
            assertEquals(TransactionState.ONGOING, open.state());
            assertEquals(listing.producerId(), open.producerId());
            assertEquals(Set.of(partition), open.topicPartitions());
            assertTrue(open.transactionStartTimeMs().isPresent(), "an open transaction has a start time");
            ProducerState writer = producerOf(partition, open.producerId());
            assertEquals(OptionalLong.of(firstOffset), writer.currentTransactionStartOffset());

            producer.commitTransaction();

            // Kafka answers the commit once it is prepared and writes the markers after.
            Clients.await("the transaction to complete",
                    () -> describeTransaction(transactionalId).state() == TransactionState.COMPLETE_COMMIT);
            TransactionDescription committed = describeTransaction(transactionalId);
            assertTrue(committed.topicPartitions().isEmpty(), "no partitions after the commit: " + committed);
            assertEquals(OptionalLong.empty(), producerOf(partition, open.producerId()).currentTransactionStartOffset());
        }
    }

    /**
     * A producer fenced between transactions fails its next send and commit.
     * Kafka 4.3 answers both with INVALID_PRODUCER_EPOCH (its transaction
     * coordinator's PRODUCER_FENCED is translated for Produce), checked
     * against the reference broker of scripts/kafka-ref.sh.
     */
    @Test
    void fenceProducersAfterACommit() throws Exception {
        String topic = "admin-fence-after";
        Clients.createTopic(admin, topic, 1);
        try (KafkaProducer<String, String> producer = transactionalProducer("fence-after")) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, "k", "committed")).get();
            producer.commitTransaction();
            int epochBefore = describeTransaction("fence-after").producerEpoch();

            get(admin.fenceProducers(List.of("fence-after")).all());

            assertTrue(describeTransaction("fence-after").producerEpoch() > epochBefore, "the fence bumps the epoch");
            producer.beginTransaction();
            assertFenced(producer, topic);
        }
    }

    /** A producer fenced mid-transaction: its transaction is aborted, so read_committed readers are not held up. */
    @Test
    void fenceProducersAbortsTheOpenTransaction() throws Exception {
        String topic = "admin-fence-before";
        TopicPartition partition = new TopicPartition(topic, 0);
        Clients.createTopic(admin, topic, 1);
        try (KafkaProducer<String, String> producer = transactionalProducer("fence-before")) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, "k", "aborted by the fence")).get();

            get(admin.fenceProducers(List.of("fence-before")).all());

            TransactionDescription fenced = describeTransaction("fence-before");
            assertEquals(TransactionState.EMPTY, fenced.state(), "aborted, then re-initialised by the fence");
            assertTrue(fenced.topicPartitions().isEmpty(), "no partitions left in the transaction: " + fenced);
            assertFenced(producer, topic);
        }
        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            consumer.assign(List.of(partition));
            assertEquals(List.of(), Clients.readAssignedToEnd(consumer));
            assertTrue(consumer.position(partition) > 0, "the last stable offset moved past the aborted record");
        }
    }

    private static void assertFenced(KafkaProducer<String, String> producer, String topic) {
        ExecutionException sendFailure = assertThrows(ExecutionException.class,
                () -> producer.send(new ProducerRecord<>(topic, "k", "fenced")).get());
        assertInstanceOf(InvalidProducerEpochException.class, sendFailure.getCause());
        assertThrows(InvalidProducerEpochException.class, producer::commitTransaction);
    }

    private static KafkaProducer<String, String> transactionalProducer(String transactionalId) {
        return Clients.producer(BROKER, Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId));
    }

    private static Set<String> topicNames() {
        return get(admin.listTopics().names());
    }

    private static int partitionCount(String topic) {
        return get(admin.describeTopics(List.of(topic)).topicNameValues().get(topic)).partitions().size();
    }

    private static Config topicConfig(String topic) {
        return config(new ConfigResource(ConfigResource.Type.TOPIC, topic));
    }

    private static Config config(ConfigResource resource) {
        return get(admin.describeConfigs(List.of(resource)).values().get(resource));
    }

    private static void alterTopicConfig(String topic, AlterConfigOp... ops) {
        get(admin.incrementalAlterConfigs(
                Map.of(new ConfigResource(ConfigResource.Type.TOPIC, topic), List.of(ops))).all());
    }

    private static Set<String> listValue(ConfigEntry entry) {
        return Set.of(entry.value().split(","));
    }

    private static Node onlyNode() {
        return onlyElement(get(admin.describeCluster().nodes()));
    }

    private static Collection<GroupListing> listConsumerGroups() {
        return get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all());
    }

    private static ConsumerGroupDescription describeGroup(String group) {
        return get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
    }

    private static Map<TopicPartition, OffsetAndMetadata> committedOffsets(String group) {
        return get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    }

    private static TransactionDescription describeTransaction(String transactionalId) {
        return get(admin.describeTransactions(List.of(transactionalId)).description(transactionalId));
    }

    private static ProducerState producerOf(TopicPartition partition, long producerId) {
        List<ProducerState> producers =
                get(admin.describeProducers(List.of(partition)).partitionResult(partition)).activeProducers();
        return onlyElement(producers.stream().filter(p -> p.producerId() == producerId).toList());
    }

    private static <T> T onlyElement(Collection<T> elements) {
        assertEquals(1, elements.size(), "exactly one element: " + elements);
        return elements.iterator().next();
    }
}
