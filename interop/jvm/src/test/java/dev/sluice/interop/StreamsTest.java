package dev.sluice.interop;

import static dev.sluice.interop.Clients.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.Topology;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Disabled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

import dev.sluice.streams.AdClicks;
import dev.sluice.streams.StreamsApp;
import dev.sluice.streams.WordCount;

/**
 * Kafka Streams 4.3.1 against the broker: the example applications of
 * src/main/java/dev/sluice/streams with {@code processing.guarantee=exactly_once_v2},
 * state stores with changelog topics and repartition topics that Streams
 * creates itself. Every result is read back with read_committed and compared
 * with counts computed here from the input: exactly, never more.
 */
class StreamsTest {

    @RegisterExtension
    static final SluiceBroker BROKER = new SluiceBroker();

    private static final Duration RESULT_WAIT = Duration.ofSeconds(60);
    private static final int PARTITIONS = 3;

    private static Admin admin;

    /** State directories and the child JVMs' logs; kept when a test fails. */
    @TempDir(cleanup = CleanupMode.ON_SUCCESS)
    Path tmp;

    @BeforeAll
    static void openAdmin() {
        admin = Clients.admin(BROKER);
    }

    @AfterAll
    static void closeAdmin() {
        admin.close();
    }

    /** (a) The windowed ad-click count, classic rebalance protocol, in this JVM. */
    @Test
    void adClicksCountsEveryWindowExactlyWithTheClassicProtocol() throws Exception {
        runAdClicksInProcess("classic", "group.protocol=classic");
    }

    /**
     * (b) The same with the KIP-1071 streams rebalance protocol: the
     * StreamsGroupHeartbeat API (88) assigns tasks and the broker creates the
     * internal topics. Passes against the reference Kafka 4.3.1 (run it with
     * {@code -Djunit.jupiter.conditions.deactivate=org.junit.*DisabledCondition}
     * and INTEROP_BOOTSTRAP_SERVERS).
     */
    @Test
    @Disabled("Sluice gap: streams groups (KIP-1071, API 88/89) not implemented")
    void adClicksCountsEveryWindowExactlyWithTheStreamsProtocol() throws Exception {
        runAdClicksInProcess("streams", "group.protocol=streams");
    }

    /** (a) Word count: flatMap re-keys by word, so counting goes through a repartition topic. */
    @Test
    void wordCountCountsEveryWordExactly() throws Exception {
        String input = "lines-classic";
        String output = "word-counts-classic";
        String appId = "word-count-classic";
        Clients.createTopic(admin, input, PARTITIONS);
        Clients.createTopic(admin, output, PARTITIONS);

        List<String> lines = new ArrayList<>();
        Random random = new Random(7);
        String[] vocabulary = {"kafka", "sluice", "stream", "Log", "offset", "commit", "partition", "broker"};
        for (int i = 0; i < 500; i++) {
            StringBuilder line = new StringBuilder();
            int words = 1 + random.nextInt(8);
            for (int w = 0; w < words; w++) {
                line.append(vocabulary[random.nextInt(vocabulary.length)]).append(w % 3 == 0 ? ", " : " ");
            }
            lines.add(line.toString());
        }
        Map<String, Long> expected = new TreeMap<>();
        for (String line : lines) {
            for (String word : line.toLowerCase(Locale.ROOT).split("[^a-z]+")) {
                if (!word.isEmpty()) {
                    expected.merge(word, 1L, Long::sum);
                }
            }
        }
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER, Map.of())) {
            for (int i = 0; i < lines.size(); i++) {
                producer.send(new ProducerRecord<>(input, i % PARTITIONS, "line-" + i, lines.get(i)));
            }
            producer.flush();
        }

        Properties props = StreamsApp.config(BROKER.bootstrapServers(), appId, "state.dir=" + tmp.resolve("state"));
        try (KafkaStreams streams = new KafkaStreams(WordCount.topology(input, output), props)) {
            streams.start();
            awaitCounts(output, expected, () -> "streams state " + streams.state());
        }
        checkCommittedCounts(output, expected);
        assertInternalTopics(appId, appId + "-" + WordCount.REPARTITION_NAME + "-repartition",
                appId + "-" + WordCount.STORE_NAME + "-changelog", "compact");
    }

    /**
     * (c) The application in a JVM of its own, killed with SIGKILL while
     * clicks keep arriving, then restarted on the same state directory. With
     * exactly-once v2 the committed output must end with each window's exact
     * count and must never, at any point, have shown a count above it: a
     * count above it would be a click counted twice, i.e. the killed
     * instance's uncommitted work leaking into committed output, or its input
     * offsets lost and the clicks processed again.
     */
    @Test
    void adClicksSurvivesSigkillWithExactCounts() throws Exception {
        String input = "clicks-crash";
        String output = "ad-counts-crash";
        String appId = "ad-clicks-crash";
        Clients.createTopic(admin, input, PARTITIONS);
        Clients.createTopic(admin, output, PARTITIONS);

        List<Click> clicks = clicks(20_000, 6, 10, 42);
        Map<String, Long> expected = expectedCounts(clicks);
        int firstBatch = 8_000;
        produceClicks(input, clicks.subList(0, firstBatch));

        // No record cache: every click's count update is written (to the
        // changelog and the output) inside the open transaction, so the kill
        // leaves counts that must be aborted, and each window's committed
        // counts must read exactly 1, 2, 3, … with no value skipped or repeated.
        String[] args = {BROKER.bootstrapServers(), input, output,
                "application.id=" + appId, "state.dir=" + tmp.resolve("state"), "statestore.cache.max.bytes=0"};
        AtomicInteger sent = new AtomicInteger(firstBatch);
        Thread feeder = new Thread(() -> {
            try (KafkaProducer<String, String> producer = Clients.producer(BROKER, Map.of())) {
                for (int i = firstBatch; i < clicks.size(); i++) {
                    send(producer, input, clicks.get(i));
                    if (i % 100 == 99) {
                        producer.flush();
                        sent.set(i + 1);
                        ChildJvm.sleep(50);
                    }
                }
                producer.flush();
                sent.set(clicks.size());
            }
        }, "click-feeder");

        int sentAtKill;
        int committedAtKill;
        try (ChildJvm first = ChildJvm.start("ad-clicks-1", tmp, AdClicks.class.getName(), args)) {
            assertTrue(first.awaitOutput("STATE RUNNING", Duration.ofSeconds(60)),
                    "the application did not reach RUNNING\n" + first.logTail());
            feeder.start();
            // Mid-stream: once some counts are committed, with clicks still arriving.
            try (OutputReader reader = new OutputReader(output, "read_committed")) {
                reader.pollUntil(Duration.ofSeconds(30), last -> !last.isEmpty(), first::logTail);
                ChildJvm.sleep(1_000);
                reader.poll(Duration.ofMillis(200));
                committedAtKill = reader.records().size();
            }
            sentAtKill = sent.get();
            first.kill();
            assertTrue(first.output().contains("STATE RUNNING") && !first.output().contains("FAILED"),
                    "the first instance failed before it was killed\n" + first.logTail());
        }
        assertTrue(sentAtKill < clicks.size(),
                "the kill came after all " + clicks.size() + " clicks were sent: not mid-stream");

        try (ChildJvm second = ChildJvm.start("ad-clicks-2", tmp, AdClicks.class.getName(), args)) {
            feeder.join(60_000);
            assertEquals(clicks.size(), sent.get(), "the feeder did not send every click");
            awaitCounts(output, expected, second::logTail);
            // SIGTERM runs the shutdown hook, which closes the application: exit status 143 (128 + 15).
            assertEquals(143, second.stop(Duration.ofSeconds(30)), "exit status after SIGTERM\n" + second.logTail());
            assertTrue(second.output().contains("STATE NOT_RUNNING") && !second.output().contains("FAILED"),
                    "the restarted instance did not run and close cleanly\n" + second.logTail());
        }
        System.out.printf("crash test: killed with %d of %d clicks sent and at least %d committed updates%n",
                sentAtKill, clicks.size(), committedAtKill);
        checkCommittedCounts(output, expected, true);
    }

    private void runAdClicksInProcess(String name, String... overrides) throws Exception {
        String input = "clicks-" + name;
        String output = "ad-counts-" + name;
        String appId = "ad-clicks-" + name;
        Clients.createTopic(admin, input, PARTITIONS);
        Clients.createTopic(admin, output, PARTITIONS);

        List<Click> clicks = clicks(3_000, 5, 6, 1);
        Map<String, Long> expected = expectedCounts(clicks);
        produceClicks(input, clicks);

        List<String> settings = new ArrayList<>(List.of(overrides));
        settings.add("state.dir=" + tmp.resolve("state"));
        Properties props = StreamsApp.config(BROKER.bootstrapServers(), appId, settings.toArray(String[]::new));
        Topology topology = AdClicks.topology(input, output);
        List<Throwable> errors = new ArrayList<>();
        try (KafkaStreams streams = new KafkaStreams(topology, props)) {
            streams.setUncaughtExceptionHandler(e -> {
                errors.add(e);
                return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                        .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            streams.start();
            awaitCounts(output, expected, () -> "streams state " + streams.state() + ", errors " + errors,
                    () -> streams.state() == KafkaStreams.State.ERROR);
        }
        assertEquals(List.of(), errors, "stream thread errors");
        checkCommittedCounts(output, expected);
        assertInternalTopics(appId, appId + "-" + AdClicks.REPARTITION_NAME + "-repartition",
                appId + "-" + AdClicks.STORE_NAME + "-changelog", "compact,delete");
    }

    // ---- the clicks and what they must add up to ----

    record Click(String ad, long timestamp, int partition, String id) {
    }

    /**
     * {@code count} clicks on {@code ads} ads at random times (out of order)
     * within {@code minutes} minutes ending 10 minutes ago, each on a random
     * partition (the frontend that logged it), not the ad's.
     */
    static List<Click> clicks(int count, int ads, int minutes, long seed) {
        Random random = new Random(seed);
        long base = AdClicks.windowStart(System.currentTimeMillis()) - Duration.ofMinutes(10 + minutes).toMillis();
        List<Click> clicks = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            clicks.add(new Click("ad-" + random.nextInt(ads),
                    base + (long) (random.nextDouble() * Duration.ofMinutes(minutes).toMillis()),
                    random.nextInt(PARTITIONS), "click-" + i));
        }
        return clicks;
    }

    static Map<String, Long> expectedCounts(List<Click> clicks) {
        return clicks.stream().collect(Collectors.groupingBy(
                c -> AdClicks.outputKey(c.ad(), AdClicks.windowStart(c.timestamp())), TreeMap::new,
                Collectors.counting()));
    }

    private static void produceClicks(String topic, List<Click> clicks) {
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER, Map.of())) {
            clicks.forEach(click -> send(producer, topic, click));
            producer.flush();
        }
    }

    private static void send(KafkaProducer<String, String> producer, String topic, Click click) {
        producer.send(new ProducerRecord<>(topic, click.partition(), click.timestamp(), click.ad(), click.id()));
    }

    // ---- reading the results ----

    /** Waits until the committed output's last value per key equals {@code expected}. */
    private static void awaitCounts(String output, Map<String, Long> expected, Supplier<String> context) {
        awaitCounts(output, expected, context, () -> false);
    }

    /** As above, failing at once when {@code failed} (e.g. the application is in state ERROR). */
    private static void awaitCounts(String output, Map<String, Long> expected, Supplier<String> context,
            BooleanSupplier failed) {
        try (OutputReader reader = new OutputReader(output, "read_committed")) {
            reader.pollUntil(RESULT_WAIT, last -> {
                if (failed.getAsBoolean()) {
                    fail("the application failed; last committed counts " + new TreeMap<>(last) + "\n"
                            + context.get());
                }
                // A count above the expected one can never come down again: fail now, not at the timeout.
                Map<String, String> above = new TreeMap<>();
                last.forEach((key, count) -> {
                    Long limit = expected.get(key);
                    if (limit == null || count > limit) {
                        above.put(key, count + " > " + limit);
                    }
                });
                if (!above.isEmpty()) {
                    fail("committed counts above the expected ones: " + above + "\n" + context.get());
                }
                return expected.equals(last);
            }, context);
        }
    }

    private static void checkCommittedCounts(String output, Map<String, Long> expected) {
        checkCommittedCounts(output, expected, false);
    }

    /**
     * Reads the whole committed output again, from the beginning to the last
     * stable offset: the last value of every window is its exact count, and
     * every value ever committed for it was at most that count and above the
     * one before (a repeat would be an update committed twice); with
     * {@code everyUpdate} (no record cache) exactly one above.
     */
    private static void checkCommittedCounts(String output, Map<String, Long> expected, boolean everyUpdate) {
        int committed;
        try (OutputReader reader = new OutputReader(output, "read_committed")) {
            List<ConsumerRecord<String, String>> records = Clients.readAssignedToEnd(reader.consumer);
            committed = records.size();
            Map<String, Long> last = new TreeMap<>();
            List<String> violations = new ArrayList<>();
            for (ConsumerRecord<String, String> record : records) {
                long count = Long.parseLong(record.value());
                Long limit = expected.get(record.key());
                Long before = last.put(record.key(), count);
                if (limit == null || count > limit) {
                    violations.add(record.key() + " -> " + count + " (expected at most " + limit + ") at "
                            + record.partition() + "/" + record.offset());
                } else if (everyUpdate ? count != (before == null ? 0 : before) + 1
                        : before != null && count <= before) {
                    violations.add(record.key() + " -> " + count + " after " + before + " at "
                            + record.partition() + "/" + record.offset());
                }
            }
            assertEquals(List.of(), violations.subList(0, Math.min(20, violations.size())),
                    violations.size() + " committed counts above the expected ones or out of sequence");
            assertEquals(expected, last, "each window's last committed count");
        }
        // read_uncommitted also shows aborted transactions' records (a killed
        // instance's unfinished work); only reported.
        try (OutputReader reader = new OutputReader(output, "read_uncommitted")) {
            List<ConsumerRecord<String, String>> records = Clients.readAssignedToEnd(reader.consumer);
            long above = records.stream()
                    .filter(r -> Long.parseLong(r.value()) > expected.getOrDefault(r.key(), Long.MAX_VALUE)).count();
            System.out.printf("%s: %d keys, %d records committed, %d read_uncommitted (%d aborted),"
                    + " %d uncommitted above the final count%n",
                    output, expected.size(), committed, records.size(), records.size() - committed, above);
        }
    }

    /** Streams created its repartition and changelog topics, the changelog with the expected cleanup policy. */
    private static void assertInternalTopics(String appId, String repartition, String changelog, String policy) {
        Set<String> topics = get(admin.listTopics().names());
        Set<String> internal = topics.stream().filter(t -> t.startsWith(appId + "-")).collect(Collectors.toSet());
        assertEquals(Set.of(repartition, changelog), internal, "internal topics of " + appId);
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
        Config config = get(admin.describeConfigs(List.of(resource)).all()).get(resource);
        assertEquals(policy, config.get("cleanup.policy").value(), "cleanup.policy of " + changelog);
        Map<TopicPartition, Long> ends = endOffsets(repartition);
        assertTrue(ends.values().stream().mapToLong(Long::longValue).sum() > 0,
                "nothing went through " + repartition + ": " + ends);
    }

    private static Map<TopicPartition, Long> endOffsets(String topic) {
        int partitions = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic).partitions().size();
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        for (int p = 0; p < partitions; p++) {
            latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
        }
        Map<TopicPartition, Long> ends = new TreeMap<>(Comparator.comparing(TopicPartition::toString));
        get(admin.listOffsets(latest).all()).forEach((tp, info) -> ends.put(tp, info.offset()));
        return ends;
    }

    /** A consumer assigned to every partition of an output topic, from the beginning, collecting what it reads. */
    private static final class OutputReader implements AutoCloseable {
        final KafkaConsumer<String, String> consumer;
        private final List<ConsumerRecord<String, String>> records = new ArrayList<>();
        private final Map<String, Long> last = new HashMap<>();

        OutputReader(String topic, String isolation) {
            consumer = Clients.consumer(BROKER, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation));
            List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
                    .map(p -> new TopicPartition(topic, p.partition())).toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
        }

        void poll(Duration timeout) {
            for (ConsumerRecord<String, String> record : consumer.poll(timeout)) {
                records.add(record);
                last.put(record.key(), Long.parseLong(record.value()));
            }
        }

        List<ConsumerRecord<String, String>> records() {
            return records;
        }

        void pollUntil(Duration timeout, java.util.function.Predicate<Map<String, Long>> done,
                Supplier<String> context) {
            Instant deadline = Instant.now().plus(timeout);
            while (!done.test(last)) {
                if (Instant.now().isAfter(deadline)) {
                    fail("timed out after " + timeout + "; last committed counts " + new TreeMap<>(last)
                            + " (" + records.size() + " records)\n" + context.get());
                }
                poll(Duration.ofMillis(200));
            }
        }

        @Override
        public void close() {
            consumer.close();
        }
    }
}
