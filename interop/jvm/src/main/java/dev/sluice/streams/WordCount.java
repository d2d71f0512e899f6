package dev.sluice.streams;

import java.util.Arrays;
import java.util.Locale;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * The classic word count: lines of text in, {@code word -> count} out (value
 * a decimal string; the last value per word is its count). Splitting lines
 * into words re-keys the stream, so counting goes through the repartition
 * topic {@code <application.id>-words-repartition} into the key-value store
 * {@code word-counts} (changelog {@code <application.id>-word-counts-changelog}).
 *
 * <pre>java -cp … dev.sluice.streams.WordCount BOOTSTRAP INPUT OUTPUT [name=value …]</pre>
 */
public final class WordCount {

    public static final String APPLICATION_ID = "word-count";
    public static final String REPARTITION_NAME = "words";
    public static final String STORE_NAME = "word-counts";

    private WordCount() {
    }

    public static Topology topology(String inputTopic, String outputTopic) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(inputTopic, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
                .filter((key, word) -> !word.isEmpty())
                .groupBy((key, word) -> word, Grouped.with(REPARTITION_NAME, Serdes.String(), Serdes.String()))
                .count(Materialized.as(STORE_NAME))
                .toStream()
                .mapValues(count -> Long.toString(count))
                .to(outputTopic, Produced.with(Serdes.String(), Serdes.String()));
        return builder.build();
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length < 3) {
            System.err.println("usage: WordCount BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC [name=value ...]");
            System.exit(2);
        }
        String[] overrides = Arrays.copyOfRange(args, 3, args.length);
        StreamsApp.run(topology(args[1], args[2]), StreamsApp.config(args[0], APPLICATION_ID, overrides));
    }
}
