package dev.sluice.streams;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;

/**
 * What the example applications share: their configuration (exactly-once v2,
 * string serdes) and a {@code main} that runs a topology until SIGTERM, printing
 * every state change to stdout ({@code STATE RUNNING}, …) so a parent process
 * can tell when it is processing.
 */
public final class StreamsApp {

    private StreamsApp() {
    }

    /**
     * The applications' settings: {@code processing.guarantee=exactly_once_v2}
     * (transactions, read_committed input; commit every 100 ms, Streams' EOS
     * default), String keys and values, and a 6 s session timeout so a restarted
     * instance replaces a killed one within seconds (the consumer's default is
     * 45 s). {@code overrides} are {@code name=value} pairs that win, e.g.
     * {@code group.protocol=streams} or {@code state.dir=/tmp/x}.
     */
    public static Properties config(String bootstrapServers, String applicationId, String... overrides) {
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        for (String override : overrides) {
            int eq = override.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected name=value, got " + override);
            }
            props.put(override.substring(0, eq), override.substring(eq + 1));
        }
        return props;
    }

    /**
     * Runs {@code topology} until the JVM is told to stop (SIGTERM closes the
     * application cleanly; SIGKILL, of course, does not). Exits 1 if the
     * application fails.
     */
    static void run(Topology topology, Properties props) throws InterruptedException {
        KafkaStreams streams = new KafkaStreams(topology, props);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("FAILED " + e);
            e.printStackTrace();
            System.out.flush();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> streams.close(Duration.ofSeconds(20)), "close-streams"));
        streams.start();
        stopped.await();
        if (streams.state() == KafkaStreams.State.ERROR) {
            System.exit(1);
        }
    }
}
