package dev.sluice.streams;

import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * Clicks per ad per one-minute tumbling window, by event time.
 *
 * <p>Input: one record per click, keyed by ad id, with the click's time as the
 * record timestamp. The clicks topic is partitioned by the frontend that
 * logged the click, not by ad, so the topology first repartitions by ad id
 * (topic {@code <application.id>-clicks-by-ad-repartition}), then counts in a
 * windowed state store ({@code clicks-per-ad-minute}, backed by the changelog
 * topic {@code <application.id>-clicks-per-ad-minute-changelog}).
 *
 * <p>Output: key {@code ad@windowStart} (an ISO-8601 instant, e.g.
 * {@code ad-3@2025-01-01T10:07:00Z}), value the window's count so far as a
 * decimal string; each update of a window replaces the previous one, so the
 * last value per key is the window's count. Late clicks are accepted for an
 * hour (the grace period).
 *
 * <pre>java -cp … dev.sluice.streams.AdClicks BOOTSTRAP INPUT OUTPUT [name=value …]</pre>
 *
 * runs it with {@link StreamsApp#config} (exactly-once v2, application id
 * {@code ad-clicks} unless overridden) until SIGTERM.
 */
public final class AdClicks {

    public static final String APPLICATION_ID = "ad-clicks";
    public static final String REPARTITION_NAME = "clicks-by-ad";
    public static final String STORE_NAME = "clicks-per-ad-minute";
    public static final Duration WINDOW = Duration.ofMinutes(1);
    public static final Duration GRACE = Duration.ofHours(1);

    private AdClicks() {
    }

    public static Topology topology(String inputTopic, String outputTopic) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(inputTopic, Consumed.with(Serdes.String(), Serdes.String()))
                .repartition(Repartitioned.<String, String>as(REPARTITION_NAME)
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.String()))
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
                .count(Materialized.as(STORE_NAME))
                .toStream()
                .map((window, count) -> KeyValue.pair(outputKey(window.key(), window.window().start()),
                        Long.toString(count)))
                .to(outputTopic, Produced.with(Serdes.String(), Serdes.String()));
        return builder.build();
    }

    /** {@code ad@windowStart}, the output key for the window of {@code ad} starting at {@code windowStartMs}. */
    public static String outputKey(String ad, long windowStartMs) {
        return ad + "@" + Instant.ofEpochMilli(windowStartMs);
    }

    /** The start of the tumbling window a click at {@code timestampMs} falls in. */
    public static long windowStart(long timestampMs) {
        return timestampMs - Math.floorMod(timestampMs, WINDOW.toMillis());
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length < 3) {
            System.err.println("usage: AdClicks BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC [name=value ...]");
            System.exit(2);
        }
        String[] overrides = Arrays.copyOfRange(args, 3, args.length);
        StreamsApp.run(topology(args[1], args[2]), StreamsApp.config(args[0], APPLICATION_ID, overrides));
    }
}
