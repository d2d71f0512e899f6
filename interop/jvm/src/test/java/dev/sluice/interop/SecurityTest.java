package dev.sluice.interop;

import static dev.sluice.interop.Clients.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The Java client over TLS: an SSL listener with required client
 * certificates (PEM key and trust stores, from {@code sluice dev certs}) and
 * a SASL_SSL listener with SCRAM; users made with the Java admin client's
 * AlterUserScramCredentials (KIP-554) log in; a wrong password is refused.
 */
class SecurityTest {

    private static Path certs;
    private static SluiceBroker ssl;
    private static SluiceBroker saslSsl;

    @BeforeAll
    static void start() throws Exception {
        certs = Files.createTempDirectory("sluice-certs-");
        String bin = System.getenv("SLUICE_BIN");
        Process p = new ProcessBuilder(bin, "dev", "certs", "--dir", certs.toString(), "--force")
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0, "sluice dev certs: " + out);
        Map<String, String> tls = Map.of(
                "ssl.keystore.location", certs.resolve("broker.pem").toString(),
                "ssl.truststore.location", certs.resolve("ca.pem").toString());
        Map<String, String> sslSettings = new HashMap<>(tls);
        sslSettings.put("listeners", "SSL://127.0.0.1:0");
        sslSettings.put("ssl.client.auth", "required");
        ssl = SluiceBroker.start(sslSettings);
        Map<String, String> saslSettings = new HashMap<>(tls);
        saslSettings.put("listeners", "SASL_SSL://127.0.0.1:0");
        saslSettings.put("connection.failed.authentication.delay.ms", "0");
        saslSsl = SluiceBroker.start(saslSettings,
                List.of("--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]"));
    }

    @AfterAll
    static void stop() {
        if (ssl != null) {
            ssl.close();
        }
        if (saslSsl != null) {
            saslSsl.close();
        }
    }

    private static Map<String, Object> trustingTheCa(String bootstrap, String protocol) {
        Map<String, Object> config = new HashMap<>();
        config.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol);
        config.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
        config.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, certs.resolve("ca.pem").toString());
        config.put(CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        config.put(CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG, 15_000);
        return config;
    }

    private static Map<String, Object> mtls() {
        Map<String, Object> config = trustingTheCa(ssl.bootstrapServers(), "SSL");
        config.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
        config.put(SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, certs.resolve("client.pem").toString());
        return config;
    }

    private static Map<String, Object> scram(String mechanism, String user, String password) {
        Map<String, Object> config = trustingTheCa(saslSsl.bootstrapServers(), "SASL_SSL");
        config.put(SaslConfigs.SASL_MECHANISM, mechanism);
        config.put(SaslConfigs.SASL_JAAS_CONFIG, String.format(
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"%s\" password=\"%s\";",
                user, password));
        return config;
    }

    /** Creates {@code topic}, writes one record and reads it back, all with {@code config}. */
    private static void roundTrip(Map<String, Object> config, String topic) throws Exception {
        try (Admin admin = Admin.create(config)) {
            get(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all());
        }
        Map<String, Object> producerConfig = new HashMap<>(config);
        producerConfig.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        producerConfig.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerConfig)) {
            producer.send(new ProducerRecord<>(topic, "k", "over tls")).get(20, TimeUnit.SECONDS);
        }
        Map<String, Object> consumerConfig = new HashMap<>(config);
        consumerConfig.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        consumerConfig.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfig)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> records =
                    Clients.pollUntilCount(consumer, 1);
            assertEquals("over tls", records.get(0).value());
        }
    }

    @Test
    void mtlsWithPemKeyAndTrustStores() throws Exception {
        roundTrip(mtls(), "java-mtls");
    }

    @Test
    void aClientWithoutItsCertificateIsRefused() {
        Map<String, Object> config = trustingTheCa(ssl.bootstrapServers(), "SSL");
        config.put(CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, 5_000);
        config.put(CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG, 5_000);
        try (Admin admin = Admin.create(config)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> admin.describeCluster().clusterId().get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof org.apache.kafka.common.errors.SslAuthenticationException
                    || e.getCause() instanceof org.apache.kafka.common.errors.TimeoutException,
                    "not refused as expected: " + e.getCause());
        }
    }

    @Test
    void scramUsersMadeByTheJavaAdminLogInOverSaslSsl() throws Exception {
        roundTrip(scram("SCRAM-SHA-512", "admin", "admin-secret"), "java-sasl-ssl");
        try (Admin admin = Admin.create(scram("SCRAM-SHA-512", "admin", "admin-secret"))) {
            get(admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(
                    "bob", new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), "bob-secret"))).all());
            assertEquals(List.of(new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)),
                    get(admin.describeUserScramCredentials(List.of("bob")).description("bob"))
                            .credentialInfos());
        }
        try (Admin bob = Admin.create(scram("SCRAM-SHA-256", "bob", "bob-secret"))) {
            assertTrue(get(bob.listTopics().names()).contains("java-sasl-ssl"));
        }
    }

    @Test
    void aWrongPasswordIsASaslAuthenticationError() {
        Map<String, Object> config = scram("SCRAM-SHA-512", "admin", "wrong");
        try (Admin admin = Admin.create(config)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> admin.describeCluster().clusterId().get(10, TimeUnit.SECONDS));
            assertInstanceOf(SaslAuthenticationException.class, e.getCause());
        }
    }
}
