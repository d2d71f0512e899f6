package dev.sluice.interop;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * A Sluice broker process ({@code $SLUICE_BIN serve}) on an OS-chosen port with
 * its own temporary data directory.
 *
 * <p>Use it directly with try-with-resources ({@link #start}), or as a JUnit
 * extension, one broker per test class:
 * {@code @RegisterExtension static final SluiceBroker BROKER = new SluiceBroker();}.
 * As an extension it starts before the class's first test, stops after its
 * last, and prints the tail of the broker's log for every failed test, since
 * the broker's side of a failure is usually the interesting half.
 *
 * <p>With {@code INTEROP_BOOTSTRAP_SERVERS} set, no process is started and the
 * tests run against that broker instead, e.g. the reference Kafka of
 * {@code scripts/kafka-ref.sh start}: the way to check that what a test
 * expects is what Kafka does. Topic names are fixed, so use a fresh broker
 * per run.
 */
public final class SluiceBroker implements AutoCloseable, BeforeAllCallback, AfterAllCallback, TestWatcher {

    private static final String READY_PREFIX = "Sluice broker listening on ";
    private static final Duration START_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(20);
    private static final int LOG_TAIL_LINES = 150;

    /**
     * Settings every test broker gets: no initial rebalance delay (Kafka's 3 s
     * would dominate the group tests' runtime) and a short KIP-848 heartbeat
     * interval, so assignments reconcile within a second.
     */
    private static final Map<String, String> TEST_DEFAULTS = Map.of(
            "group.initial.rebalance.delay.ms", "0",
            "group.consumer.heartbeat.interval.ms", "500");

    private final Map<String, String> settings;
    private final List<String> extraArgs;
    private Path workDir;
    private Process process;
    private String bootstrapServers;
    private boolean anyTestFailed;

    /** A broker with {@link #TEST_DEFAULTS}; {@code overrides} win over them. */
    public SluiceBroker(Map<String, String> overrides) {
        this(overrides, List.of());
    }

    /**
     * As {@link #SluiceBroker(Map)}, with more {@code sluice serve} arguments
     * (e.g. {@code --add-scram}). A {@code listeners} override replaces the
     * plaintext listener; {@link #bootstrapServers} is then its first one.
     */
    public SluiceBroker(Map<String, String> overrides, List<String> extraArgs) {
        settings = new LinkedHashMap<>(TEST_DEFAULTS);
        settings.putAll(overrides);
        this.extraArgs = List.copyOf(extraArgs);
    }

    public SluiceBroker() {
        this(Map.of());
    }

    /** Starts a broker for use with try-with-resources. */
    public static SluiceBroker start(Map<String, String> overrides) {
        return start(overrides, List.of());
    }

    /** Starts a broker with more {@code sluice serve} arguments, for use with try-with-resources. */
    public static SluiceBroker start(Map<String, String> overrides, List<String> extraArgs) {
        SluiceBroker broker = new SluiceBroker(overrides, extraArgs);
        broker.start();
        return broker;
    }

    /** {@code host:port} the broker listens on, for {@code bootstrap.servers}. */
    public String bootstrapServers() {
        if (bootstrapServers == null) {
            throw new IllegalStateException("broker not started");
        }
        return bootstrapServers;
    }

    public Path logFile() {
        return workDir.resolve("broker.log");
    }

    private void start() {
        String external = System.getenv("INTEROP_BOOTSTRAP_SERVERS");
        if (external != null && !external.isBlank()) {
            bootstrapServers = external;
            return;
        }
        String bin = System.getenv("SLUICE_BIN");
        // Unset, Maven passes the literal "${env.SLUICE_BIN}": fail rather
        // than skip, so a misconfigured run cannot look green.
        if (bin == null || bin.isBlank() || bin.startsWith("${")) {
            throw new IllegalStateException(
                    "SLUICE_BIN must name the sluice binary, e.g. SLUICE_BIN=target/release/sluice mvn test");
        }
        try {
            workDir = Files.createTempDirectory("sluice-interop-");
            List<String> command = new ArrayList<>(List.of(bin, "serve",
                    "--data-dir", workDir.resolve("data").toString(),
                    // Port 0 for HTTP (/metrics), so brokers never compete for its default port.
                    "--set", "http.listeners=http://127.0.0.1:0"));
            if (!settings.containsKey("listeners")) {
                // Port 0: the OS picks a free port, the broker prints it.
                command.addAll(List.of("--listen", "127.0.0.1:0"));
            }
            settings.forEach((name, value) -> command.addAll(List.of("--set", name + "=" + value)));
            command.addAll(extraArgs);
            process = new ProcessBuilder(command)
                    .redirectError(logFile().toFile())
                    .start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + bin, e);
        }
        bootstrapServers = awaitListeningAddress();
    }

    /**
     * Reads stdout until the broker announces its address. The reader keeps
     * draining stdout afterwards so the broker never blocks on a full pipe.
     */
    private String awaitListeningAddress() {
        CompletableFuture<String> address = new CompletableFuture<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader out = new BufferedReader(
                    new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = out.readLine()) != null) {
                    if (line.startsWith(READY_PREFIX)) {
                        address.complete(line.substring(READY_PREFIX.length()).trim());
                    }
                }
            } catch (IOException e) {
                address.completeExceptionally(e);
            }
            address.completeExceptionally(new IllegalStateException("broker stdout closed before it was listening"));
        }, "sluice-broker-stdout");
        reader.setDaemon(true);
        reader.start();
        try {
            return address.get(START_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException | TimeoutException e) {
            process.destroyForcibly();
            throw new IllegalStateException("Sluice broker did not start; its log:\n" + logTail(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** SIGTERM (a clean shutdown), then SIGKILL if it does not stop in time. */
    @Override
    public void close() {
        if (process == null) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly().waitFor();
                throw new IllegalStateException("Sluice broker ignored SIGTERM for " + STOP_TIMEOUT);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            process = null;
            // A failure's data directory and log are evidence; keep them.
            if (!anyTestFailed) {
                deleteRecursively(workDir);
            }
        }
    }

    /** The last lines of the broker's log (its stderr). */
    public String logTail() {
        try (Stream<String> lines = Files.lines(logFile(), StandardCharsets.UTF_8)) {
            List<String> all = lines.toList();
            return String.join("\n", all.subList(Math.max(0, all.size() - LOG_TAIL_LINES), all.size()));
        } catch (IOException | UncheckedIOException e) {
            return "(no broker log: " + e + ")";
        }
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        start();
    }

    @Override
    public void afterAll(ExtensionContext context) {
        close();
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        anyTestFailed = true;
        if (workDir == null) {
            return;
        }
        System.err.printf("---- Sluice broker log (%s) after failed %s ----%n%s%n---- end of broker log ----%n",
                logFile(), context.getDisplayName(), logTail());
    }

    private static void deleteRecursively(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        } catch (IOException e) {
            // Only a temp directory left behind; not worth failing a test for.
        }
    }
}
