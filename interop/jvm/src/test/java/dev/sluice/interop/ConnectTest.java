package dev.sluice.interop;

import static dev.sluice.interop.Clients.get;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kafka Connect 4.3.1 workers against the broker, each a JVM of its own
 * (what {@code bin/connect-standalone.sh} and {@code bin/connect-distributed.sh}
 * run), with the FileStreamSource and FileStreamSink connectors from the
 * classpath ({@code plugin.path} unset): a file is copied line by line into a
 * topic and out again, and the copy must equal the original byte for byte.
 */
class ConnectTest {

    @RegisterExtension
    static final SluiceBroker BROKER = new SluiceBroker();

    private static final Duration COPY_WAIT = Duration.ofSeconds(60);
    private static final String SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector";
    private static final String SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector";

    private static Admin admin;
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    /** Kept when a test fails: the files, worker logs and offsets are the evidence. */
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

    @Test
    void standaloneWorkerCopiesAFileThroughATopic() throws Exception {
        String topic = "connect-standalone-lines";
        Clients.createTopic(admin, topic, 1);
        Path source = tmp.resolve("source.txt");
        Path sink = tmp.resolve("sink.txt");
        List<String> lines = lines("standalone", 300);
        append(source, lines);

        Path worker = properties(tmp.resolve("worker.properties"), workerSettings(Map.of(
                "offset.storage.file.filename", tmp.resolve("standalone.offsets").toString())));
        Path sourceConnector = properties(tmp.resolve("source.properties"), Map.of(
                "name", "file-source", "connector.class", SOURCE, "tasks.max", "1",
                "file", source.toString(), "topic", topic));
        Path sinkConnector = properties(tmp.resolve("sink.properties"), Map.of(
                "name", "file-sink", "connector.class", SINK, "tasks.max", "1",
                "file", sink.toString(), "topics", topic));

        try (ChildJvm connect = ChildJvm.start("connect-standalone", tmp,
                "org.apache.kafka.connect.cli.ConnectStandalone",
                worker.toString(), sourceConnector.toString(), sinkConnector.toString())) {
            awaitSameBytes(source, sink, connect::logTail);
            // The worker keeps following the file.
            List<String> more = lines("standalone-appended", 50);
            append(source, more);
            awaitSameBytes(source, sink, connect::logTail);
            assertNotEquals(-1, connect.stop(Duration.ofSeconds(30)), "the worker ignored SIGTERM\n" + connect.logTail());

            List<String> all = new ArrayList<>(lines);
            all.addAll(more);
            assertEquals(all, topicValues(topic), "the records in " + topic);
        }
        assertArrayEquals(Files.readAllBytes(source), Files.readAllBytes(sink), "sink file after the worker stopped");
    }

    @Test
    void distributedWorkerCopiesAFileAndResumesAfterARestart() throws Exception {
        String topic = "connect-distributed-lines";
        Clients.createTopic(admin, topic, 1);
        Path source = tmp.resolve("source.txt");
        Path sink = tmp.resolve("sink.txt");
        List<String> lines = lines("distributed", 300, true);
        append(source, lines);

        int port = freePort();
        Map<String, String> settings = new LinkedHashMap<>(workerSettings(Map.of(
                "listeners", "http://127.0.0.1:" + port)));
        settings.putAll(Map.of(
                "group.id", "connect-sluice",
                "config.storage.topic", "connect-configs",
                "offset.storage.topic", "connect-offsets",
                "status.storage.topic", "connect-status",
                "config.storage.replication.factor", "1",
                "offset.storage.replication.factor", "1",
                "status.storage.replication.factor", "1"));
        Path worker = properties(tmp.resolve("worker.properties"), settings);
        String rest = "http://127.0.0.1:" + port;

        try (ChildJvm connect = ChildJvm.start("connect-distributed-1", tmp,
                "org.apache.kafka.connect.cli.ConnectDistributed", worker.toString())) {
            putConnector(rest, "file-source", Map.of("connector.class", SOURCE, "tasks.max", "1",
                    "file", source.toString(), "topic", topic), connect::logTail);
            putConnector(rest, "file-sink", Map.of("connector.class", SINK, "tasks.max", "1",
                    "file", sink.toString(), "topics", topic), connect::logTail);
            awaitSameBytes(source, sink, connect::logTail);
            awaitRunning(rest, "file-source", connect::logTail);
            awaitRunning(rest, "file-sink", connect::logTail);
            assertNotEquals(-1, connect.stop(Duration.ofSeconds(30)), "the worker ignored SIGTERM\n" + connect.logTail());
        }
        assertArrayEquals(Files.readAllBytes(source), Files.readAllBytes(sink), "sink file after the worker stopped");
        assertInternalTopic("connect-configs", 1);
        assertInternalTopic("connect-offsets", 25);
        assertInternalTopic("connect-status", 5);

        // While the worker is down the file grows; the restarted worker reads
        // the connectors from connect-configs and the source's position from
        // connect-offsets, and the sink resumes from its committed offset.
        List<String> more = lines("after-restart", 200);
        append(source, more);
        try (ChildJvm connect = ChildJvm.start("connect-distributed-2", tmp,
                "org.apache.kafka.connect.cli.ConnectDistributed", worker.toString())) {
            awaitSameBytes(source, sink, () -> connect.logTail() + "\n" + brokerSide(topic));
            awaitRunning(rest, "file-source", connect::logTail);
            awaitRunning(rest, "file-sink", connect::logTail);
            // And it follows what is appended once it runs again.
            List<String> last = lines("after-restart-running", 100);
            more = new ArrayList<>(more);
            more.addAll(last);
            append(source, last);
            awaitSameBytes(source, sink, () -> connect.logTail() + "\n" + brokerSide(topic));
            // Anything copied twice would show up after the copy first matched.
            ChildJvm.sleep(3_000);
            assertArrayEquals(Files.readAllBytes(source), Files.readAllBytes(sink),
                    "sink file 3 s after it matched (duplicates?)\n" + connect.logTail());
            assertNotEquals(-1, connect.stop(Duration.ofSeconds(30)), "the worker ignored SIGTERM\n" + connect.logTail());
        }
        List<String> all = new ArrayList<>(lines);
        all.addAll(more);
        assertEquals(all, topicValues(topic), "the records in " + topic + " (no line lost or sent twice)");
    }

    // ---- files ----

    private static List<String> lines(String tag, int count) {
        return lines(tag, count, false);
    }

    /**
     * Lines that make a byte-for-byte copy meaningful: ASCII, multi-byte
     * UTF-8 (unless {@code asciiOnly}), tabs, an empty line, and lines longer
     * than the source task's initial 1024-character buffer.
     *
     * <p>{@code asciiOnly} is for what a FileStreamSource task reads before a
     * restart: the task records its position in the file in characters but
     * resumes by skipping that many bytes, so after a restart it re-reads one
     * byte per multi-byte character's extra bytes (seen with the reference
     * Kafka just as with Sluice: 3 lines repeated, partly, after 300 lines
     * with 1050 extra bytes). That is FileStreamSource's limitation, not the
     * broker's, and would hide whether the broker kept the offsets.
     */
    private static List<String> lines(String tag, int count, boolean asciiOnly) {
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            lines.add(switch (i % 6) {
                case 0 -> tag + " line " + i;
                case 1 -> asciiOnly ? "plain ~!@#$%^&*()_+`-=[]{}|;':,./<>? " + i
                        : "zażółć gęślą jaźń — 日本語 — \uD83D\uDE80 " + i;
                case 2 -> "\tkey=" + i + "\tvalue with  two  spaces ";
                case 3 -> "x".repeat(1500 + i) + " " + tag;
                case 4 -> i % 12 == 4 ? "" : "{\"json\": " + i + ", \"quote\": \"\\\"\"}";
                default -> tag + "/" + i + " end";
            });
        }
        return lines;
    }

    private static void append(Path file, List<String> lines) throws IOException {
        String text = lines.stream().map(line -> line + "\n").collect(Collectors.joining());
        Files.writeString(file, text, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    private static void awaitSameBytes(Path source, Path sink, Supplier<String> context) throws IOException {
        byte[] expected = Files.readAllBytes(source);
        Instant deadline = Instant.now().plus(COPY_WAIT);
        byte[] got = new byte[0];
        while (Instant.now().isBefore(deadline)) {
            got = Files.exists(sink) ? Files.readAllBytes(sink) : new byte[0];
            if (Arrays.equals(expected, got) || got.length > expected.length) {
                break;
            }
            ChildJvm.sleep(200);
        }
        if (!Arrays.equals(expected, got)) {
            fail("sink file differs from the source: " + got.length + " bytes (" + countLines(got)
                    + " lines) where the source has " + expected.length + " (" + countLines(expected) + "); "
                    + firstDifference(expected, got) + "\n" + context.get());
        }
    }

    /** Where two files' lines first differ, and which lines the longer one repeats. */
    private static String firstDifference(byte[] expected, byte[] got) {
        List<String> want = new String(expected, StandardCharsets.UTF_8).lines().toList();
        List<String> have = new String(got, StandardCharsets.UTF_8).lines().toList();
        int i = 0;
        while (i < want.size() && i < have.size() && want.get(i).equals(have.get(i))) {
            i++;
        }
        String at = i < have.size() ? abbreviate(have.get(i)) : "(end)";
        String expectedAt = i < want.size() ? abbreviate(want.get(i)) : "(end)";
        int repeatOf = i < have.size() ? want.indexOf(have.get(i)) : -1;
        return "first difference at line " + (i + 1) + ": sink has " + at + " where the source has " + expectedAt
                + (repeatOf >= 0 && repeatOf < i ? " (a repeat of source line " + (repeatOf + 1) + ")" : "");
    }

    private static String abbreviate(String line) {
        return line.length() > 60 ? "\"" + line.substring(0, 60) + "…\"" : "\"" + line + "\"";
    }

    /** What the broker holds for the copy: the data topic's size, the sink's committed offset, the source offsets. */
    private static String brokerSide(String topic) {
        StringBuilder out = new StringBuilder();
        try {
            out.append(topic).append(" has ").append(topicValues(topic).size()).append(" records; ");
            out.append("group connect-file-sink committed ").append(get(
                    admin.listConsumerGroupOffsets("connect-file-sink").partitionsToOffsetAndMetadata()));
            try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER, Map.of())) {
                List<TopicPartition> partitions = consumer.partitionsFor("connect-offsets").stream()
                        .map(p -> new TopicPartition("connect-offsets", p.partition())).toList();
                consumer.assign(partitions);
                out.append("; connect-offsets:");
                for (ConsumerRecord<String, String> r : Clients.readAssignedToEnd(consumer)) {
                    out.append("\n  ").append(r.partition()).append('/').append(r.offset()).append(' ')
                            .append(r.key()).append(" = ").append(r.value());
                }
            }
        } catch (RuntimeException | AssertionError e) {
            out.append(" (").append(e).append(')');
        }
        return out.toString();
    }

    private static long countLines(byte[] bytes) {
        long n = 0;
        for (byte b : bytes) {
            if (b == '\n') {
                n++;
            }
        }
        return n;
    }

    private static Path properties(Path file, Map<String, String> settings) throws IOException {
        String text = settings.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue() + "\n")
                .collect(Collectors.joining());
        Files.writeString(file, text, StandardCharsets.UTF_8);
        return file;
    }

    /** What both workers share: the broker, String converters (a line is a record value), offsets flushed every second. */
    private static Map<String, String> workerSettings(Map<String, String> extra) {
        Map<String, String> settings = new LinkedHashMap<>(Map.of(
                "bootstrap.servers", BROKER.bootstrapServers(),
                "key.converter", "org.apache.kafka.connect.storage.StringConverter",
                "value.converter", "org.apache.kafka.connect.storage.StringConverter",
                "offset.flush.interval.ms", "1000",
                "listeners", "http://127.0.0.1:" + freePort()));
        settings.putAll(extra);
        return settings;
    }

    private static int freePort() {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    // ---- the broker's side ----

    /** Every value in the topic, in offset order (one partition). */
    private static List<String> topicValues(String topic) {
        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER, Map.of())) {
            consumer.assign(List.of(new TopicPartition(topic, 0)));
            return Clients.readAssignedToEnd(consumer).stream().map(ConsumerRecord::value).toList();
        }
    }

    /** Connect created its topic compacted, with replication factor 1 and its default partition count. */
    private static void assertInternalTopic(String topic, int partitions) {
        TopicDescription description = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
        assertEquals(partitions, description.partitions().size(), "partitions of " + topic);
        assertEquals(1, description.partitions().get(0).replicas().size(), "replicas of " + topic);
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config config = get(admin.describeConfigs(List.of(resource)).all()).get(resource);
        assertEquals("compact", config.get("cleanup.policy").value(), "cleanup.policy of " + topic);
    }

    // ---- the REST API ----

    /**
     * Creates (or updates) a connector, retrying while the worker starts up or
     * rebalances (connection refused, 404, 409, 503).
     */
    private static void putConnector(String rest, String name, Map<String, String> config, Supplier<String> context) {
        String json = config.entrySet().stream()
                .map(e -> quote(e.getKey()) + ": " + quote(e.getValue()))
                .collect(Collectors.joining(", ", "{", "}"));
        HttpRequest request = HttpRequest.newBuilder(URI.create(rest + "/connectors/" + name + "/config"))
                .timeout(Duration.ofSeconds(10))
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofString(json)).build();
        String last = "no answer";
        Instant deadline = Instant.now().plus(COPY_WAIT);
        while (Instant.now().isBefore(deadline)) {
            try {
                HttpResponse<String> response = HTTP.send(request, HttpResponse.BodyHandlers.ofString());
                if (response.statusCode() == 200 || response.statusCode() == 201) {
                    return;
                }
                last = response.statusCode() + " " + response.body();
            } catch (IOException e) {
                last = e.toString();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            ChildJvm.sleep(500);
        }
        fail("PUT /connectors/" + name + "/config: " + last + "\n" + context.get());
    }

    /** Waits until the connector and its one task report RUNNING. */
    private static void awaitRunning(String rest, String name, Supplier<String> context) {
        HttpRequest request = HttpRequest.newBuilder(URI.create(rest + "/connectors/" + name + "/status"))
                .timeout(Duration.ofSeconds(10)).GET().build();
        String last = "no answer";
        Instant deadline = Instant.now().plus(COPY_WAIT);
        while (Instant.now().isBefore(deadline)) {
            try {
                HttpResponse<String> response = HTTP.send(request, HttpResponse.BodyHandlers.ofString());
                last = response.statusCode() + " " + response.body();
                String body = response.body().replace(" ", "");
                if (response.statusCode() == 200 && body.contains("\"connector\":{\"state\":\"RUNNING\"")
                        && body.contains("\"tasks\":[{\"id\":0,\"state\":\"RUNNING\"")) {
                    return;
                }
            } catch (IOException e) {
                last = e.toString();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            ChildJvm.sleep(500);
        }
        fail("connector " + name + " not RUNNING: " + last + "\n" + context.get());
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}
