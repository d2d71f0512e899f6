package dev.sluice.interop;

import static dev.sluice.interop.Clients.get;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.interfaces.RSAPublicKey;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerTokenCallback;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * SASL OAUTHBEARER with the Java client: its unsecured login module
 * (unsigned JWTs) against Sluice's unsecured validator, with the token's
 * subject as the principal the authorizer checks; and RS256 tokens signed
 * here, handed to the client by a login callback handler, against a JWKS
 * file ({@code sasl.oauthbearer.jwks.endpoint.url}); a token signed by a
 * key the JWKS lacks is a SaslAuthenticationException. The authorized
 * operations the admin client reports (KIP-430) follow the ACLs.
 */
class OAuthTest {

    private static final String AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

    private static Path dir;
    private static KeyPair provider;
    private static SluiceBroker unsecured;
    private static SluiceBroker signed;

    @BeforeAll
    static void start() throws Exception {
        Map<String, String> common = Map.of(
                "listeners", "SASL_PLAINTEXT://127.0.0.1:0",
                "sasl.enabled.mechanisms", "OAUTHBEARER",
                "connection.failed.authentication.delay.ms", "0",
                "authorizer.class.name", AUTHORIZER,
                "super.users", "User:alice");
        unsecured = SluiceBroker.start(common);
        dir = Files.createTempDirectory("sluice-jwks-");
        provider = rsaKeys();
        Path jwks = dir.resolve("jwks.json");
        Files.writeString(jwks, "{\"keys\":[" + jwk((RSAPublicKey) provider.getPublic(), "rsa-1") + "]}");
        Map<String, String> signedSettings = new HashMap<>(common);
        signedSettings.put("sasl.oauthbearer.jwks.endpoint.url", jwks.toUri().toString());
        signedSettings.put("sasl.oauthbearer.expected.audience", "sluice");
        signed = SluiceBroker.start(signedSettings);
    }

    @AfterAll
    static void stop() {
        if (unsecured != null) {
            unsecured.close();
        }
        if (signed != null) {
            signed.close();
        }
    }

    private static Map<String, Object> oauth(String bootstrap) {
        Map<String, Object> config = new HashMap<>();
        config.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
        config.put(SaslConfigs.SASL_MECHANISM, "OAUTHBEARER");
        config.put(CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        config.put(CommonClientConfigs.DEFAULT_API_TIMEOUT_MS_CONFIG, 15_000);
        return config;
    }

    /** The Java client's own unsigned tokens (OAuthBearerUnsecuredLoginCallbackHandler). */
    private static Map<String, Object> unsecuredLogin(String subject) {
        Map<String, Object> config = oauth(unsecured.bootstrapServers());
        config.put(SaslConfigs.SASL_JAAS_CONFIG, String.format(
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"%s\";",
                subject));
        return config;
    }

    /** A client that logs in with {@code token}, through {@link FixedTokenHandler}. */
    private static Map<String, Object> tokenLogin(String token) {
        Map<String, Object> config = oauth(signed.bootstrapServers());
        config.put(SaslConfigs.SASL_JAAS_CONFIG,
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required token=\"" + token + "\";");
        config.put(SaslConfigs.SASL_LOGIN_CALLBACK_HANDLER_CLASS, FixedTokenHandler.class.getName());
        return config;
    }

    private static void roundTrip(Map<String, Object> config, String topic) throws Exception {
        try (Admin admin = Admin.create(config)) {
            get(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all());
        }
        Map<String, Object> producerConfig = new HashMap<>(config);
        producerConfig.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        producerConfig.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerConfig)) {
            producer.send(new ProducerRecord<>(topic, "k", "with a token")).get(20, TimeUnit.SECONDS);
        }
        Map<String, Object> consumerConfig = new HashMap<>(config);
        consumerConfig.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        consumerConfig.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfig)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> records = Clients.pollUntilCount(consumer, 1);
            assertEquals("with a token", records.get(0).value());
        }
    }

    @Test
    void unsecuredTokensLogInAsTheirSubject() throws Exception {
        roundTrip(unsecuredLogin("alice"), "java-oauth-unsecured");
        try (Admin bob = Admin.create(unsecuredLogin("bob"))) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> bob.describeAcls(AclBindingFilter.ANY).values().get(10, TimeUnit.SECONDS));
            assertInstanceOf(ClusterAuthorizationException.class, e.getCause());
        }
    }

    /**
     * KIP-430: describeTopics and describeCluster report what the caller may
     * do. A super user may do everything; bob, with Read on one topic, may
     * read and (implied) describe it, and may do nothing on the cluster.
     */
    @Test
    void authorizedOperationsFollowTheAcls() throws Exception {
        try (Admin alice = Admin.create(unsecuredLogin("alice"))) {
            get(alice.createTopics(List.of(new NewTopic("java-oauth-ops", 1, (short) 1))).all());
            get(alice.createAcls(List.of(new AclBinding(
                    new ResourcePattern(ResourceType.TOPIC, "java-oauth-ops", PatternType.LITERAL),
                    new AccessControlEntry("User:bob", "*", AclOperation.READ, AclPermissionType.ALLOW)))).all());
            DescribeTopicsOptions withOperations = new DescribeTopicsOptions().includeAuthorizedOperations(true);
            assertEquals(Set.of(AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
                            AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
                            AclOperation.ALTER_CONFIGS),
                    get(alice.describeTopics(List.of("java-oauth-ops"), withOperations).allTopicNames())
                            .get("java-oauth-ops").authorizedOperations());
            assertEquals(Set.of(AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
                            AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER,
                            AclOperation.DESCRIBE),
                    get(alice.describeCluster(new DescribeClusterOptions().includeAuthorizedOperations(true))
                            .authorizedOperations()));
        }
        try (Admin bob = Admin.create(unsecuredLogin("bob"))) {
            assertEquals(Set.of(AclOperation.READ, AclOperation.DESCRIBE),
                    get(bob.describeTopics(List.of("java-oauth-ops"),
                            new DescribeTopicsOptions().includeAuthorizedOperations(true)).allTopicNames())
                            .get("java-oauth-ops").authorizedOperations());
            assertEquals(Set.of(),
                    get(bob.describeCluster(new DescribeClusterOptions().includeAuthorizedOperations(true))
                            .authorizedOperations()));
        }
    }

    @Test
    void signedTokensAreCheckedAgainstTheJwks() throws Exception {
        long now = System.currentTimeMillis() / 1000;
        roundTrip(tokenLogin(rs256(provider, "rsa-1", "alice", now, now + 3600)), "java-oauth-signed");
        String forged = rs256(rsaKeys(), "rsa-1", "alice", now, now + 3600);
        try (Admin admin = Admin.create(tokenLogin(forged))) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> admin.describeCluster().clusterId().get(10, TimeUnit.SECONDS));
            assertInstanceOf(SaslAuthenticationException.class, e.getCause());
        }
    }

    private static KeyPair rsaKeys() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
        generator.initialize(2048);
        return generator.generateKeyPair();
    }

    private static String b64(byte[] bytes) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    }

    /** An unsigned big-endian integer, as JWK's n and e are. */
    private static String unsigned(BigInteger value) {
        byte[] bytes = value.toByteArray();
        return b64(bytes[0] == 0 ? Arrays.copyOfRange(bytes, 1, bytes.length) : bytes);
    }

    private static String jwk(RSAPublicKey key, String kid) {
        return String.format("{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}",
                kid, unsigned(key.getModulus()), unsigned(key.getPublicExponent()));
    }

    private static String rs256(KeyPair keys, String kid, String subject, long issued, long expires)
            throws Exception {
        String header = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"" + kid + "\"}";
        String claims = String.format("{\"sub\":\"%s\",\"iat\":%d,\"exp\":%d,\"aud\":\"sluice\",\"scope\":\"kafka\"}",
                subject, issued, expires);
        String input = b64(header.getBytes(StandardCharsets.UTF_8)) + "." + b64(claims.getBytes(StandardCharsets.UTF_8));
        Signature signer = Signature.getInstance("SHA256withRSA");
        signer.initSign(keys.getPrivate());
        signer.update(input.getBytes(StandardCharsets.US_ASCII));
        return input + "." + b64(signer.sign());
    }

    /**
     * Hands the Java client the token of its JAAS {@code token} option, as a
     * provider's login handler would hand it one it fetched.
     */
    public static final class FixedTokenHandler implements AuthenticateCallbackHandler {
        private String token;

        @Override
        public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> entries) {
            token = (String) entries.get(0).getOptions().get("token");
        }

        @Override
        public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
            for (Callback callback : callbacks) {
                if (!(callback instanceof OAuthBearerTokenCallback tokenCallback)) {
                    throw new UnsupportedCallbackException(callback);
                }
                String value = token;
                tokenCallback.token(new OAuthBearerToken() {
                    @Override
                    public String value() {
                        return value;
                    }

                    @Override
                    public Set<String> scope() {
                        return Set.of("kafka");
                    }

                    @Override
                    public long lifetimeMs() {
                        return System.currentTimeMillis() + 3_600_000;
                    }

                    @Override
                    public String principalName() {
                        return "alice";
                    }

                    @Override
                    public Long startTimeMs() {
                        return null;
                    }
                });
            }
        }

        @Override
        public void close() {
        }
    }
}
