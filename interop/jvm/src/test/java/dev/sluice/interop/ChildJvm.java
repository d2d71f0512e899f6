package dev.sluice.interop;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A main class run in a JVM of its own, with the tests' classpath (the Kafka
 * jars, Streams, Connect and the example applications of src/main), its
 * stdout and stderr in a log file. For what must survive or suffer a process
 * death: a Streams application killed with SIGKILL, a Connect worker stopped
 * with SIGTERM.
 */
final class ChildJvm implements AutoCloseable {

    private static final int LOG_TAIL_LINES = 80;

    private final String name;
    private final Path log;
    private final Process process;

    private ChildJvm(String name, Path log, Process process) {
        this.name = name;
        this.log = log;
        this.process = process;
    }

    /**
     * The test JVM's real classpath. Surefire starts tests from a manifest-only
     * jar, so {@code java.class.path} may be just that jar; it passes the full
     * path in {@code surefire.test.class.path}.
     */
    static String classpath() {
        String surefire = System.getProperty("surefire.test.class.path");
        return surefire != null && !surefire.isBlank() ? surefire : System.getProperty("java.class.path");
    }

    /** Starts {@code mainClass args} with a small heap; output goes to {@code dir/name.log} (appended). */
    static ChildJvm start(String name, Path dir, String mainClass, String... args) {
        Path log = dir.resolve(name + ".log");
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-cp", classpath(), mainClass));
        command.addAll(List.of(args));
        try {
            Files.createDirectories(dir);
            File file = log.toFile();
            Process process = new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(file))
                    .start();
            return new ChildJvm(name, log, process);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + mainClass, e);
        }
    }

    /** Waits until the process has printed a line containing {@code text}; false on timeout or exit. */
    boolean awaitOutput(String text, Duration timeout) {
        Instant deadline = Instant.now().plus(timeout);
        while (Instant.now().isBefore(deadline)) {
            if (output().contains(text)) {
                return true;
            }
            if (!process.isAlive()) {
                return output().contains(text);
            }
            sleep(100);
        }
        return false;
    }

    String output() {
        try {
            return Files.readString(log, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    /** The last lines of the process's output, for failure messages. */
    String logTail() {
        List<String> lines = output().lines().toList();
        return "---- " + name + " (" + log + ") ----\n"
                + String.join("\n", lines.subList(Math.max(0, lines.size() - LOG_TAIL_LINES), lines.size()))
                + "\n---- end of " + name + " ----";
    }

    boolean isAlive() {
        return process.isAlive();
    }

    long pid() {
        return process.pid();
    }

    /** SIGKILL: no shutdown hooks, no flush, no commit. */
    void kill() {
        process.destroyForcibly();
        waitFor(Duration.ofSeconds(10));
    }

    /** SIGTERM, then the exit code; SIGKILL (and -1) if it does not exit within {@code timeout}. */
    int stop(Duration timeout) {
        process.destroy();
        if (!waitFor(timeout)) {
            process.destroyForcibly();
            waitFor(Duration.ofSeconds(10));
            return -1;
        }
        return process.exitValue();
    }

    private boolean waitFor(Duration timeout) {
        try {
            return process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroyForcibly();
            waitFor(Duration.ofSeconds(10));
        }
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
