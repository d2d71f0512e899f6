package dev.sluice.interop;

import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * A subscribed consumer that records what its rebalance listener was told and
 * the records it received. Several members are driven from the test's thread
 * by polling each in turn ({@link #pollAllUntil}), which is all the group
 * protocols need: a member takes part in a rebalance while it polls.
 */
final class GroupMember implements ConsumerRebalanceListener, AutoCloseable {

    private static final Duration POLL = Duration.ofMillis(50);

    final String name;
    final KafkaConsumer<String, String> consumer;
    /** Arguments of each onPartitionsAssigned / onPartitionsRevoked call, in order. */
    final List<Set<TopicPartition>> assigned = new ArrayList<>();
    final List<Set<TopicPartition>> revoked = new ArrayList<>();
    final List<ConsumerRecord<String, String>> records = new ArrayList<>();

    private GroupMember(String name, KafkaConsumer<String, String> consumer) {
        this.name = name;
        this.consumer = consumer;
    }

    /**
     * A member of {@code group} subscribed to {@code topic}. Heartbeats every
     * 500 ms so a classic member notices a rebalance quickly.
     */
    static GroupMember subscribe(SluiceBroker broker, String name, String group, String topic,
            Map<String, Object> overrides) {
        Map<String, Object> config = new HashMap<>(Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, group,
                ConsumerConfig.CLIENT_ID_CONFIG, name));
        if (!"consumer".equals(overrides.get(ConsumerConfig.GROUP_PROTOCOL_CONFIG))) {
            // Only the classic protocol lets the client choose; KIP-848 members get the broker's interval.
            config.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        }
        config.putAll(overrides);
        GroupMember member = new GroupMember(name, Clients.consumer(broker, config));
        member.consumer.subscribe(List.of(topic), member);
        return member;
    }

    void poll() {
        consumer.poll(POLL).forEach(records::add);
    }

    Set<TopicPartition> assignment() {
        return consumer.assignment();
    }

    Set<TopicPartition> revokedInTotal() {
        Set<TopicPartition> all = new HashSet<>();
        revoked.forEach(all::addAll);
        return all;
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
        assigned.add(Set.copyOf(partitions));
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
        revoked.add(Set.copyOf(partitions));
    }

    @Override
    public void close() {
        consumer.close();
    }

    @Override
    public String toString() {
        return name + "{assignment=" + assignment() + ", assigned=" + assigned + ", revoked=" + revoked
                + ", records=" + records.size() + "}";
    }

    /** Polls every member in turn until {@code condition} holds; fails after {@link Clients#WAIT}. */
    static void pollAllUntil(List<GroupMember> members, String what, BooleanSupplier condition) {
        Instant deadline = Instant.now().plus(Clients.WAIT);
        while (!condition.getAsBoolean()) {
            if (Instant.now().isAfter(deadline)) {
                fail("timed out after " + Clients.WAIT + " waiting for " + what + "; members: " + members);
            }
            members.forEach(GroupMember::poll);
        }
    }

    /** Polls every member in turn for {@code duration}, for checks that something does not happen. */
    static void pollAllFor(List<GroupMember> members, Duration duration) {
        Instant end = Instant.now().plus(duration);
        while (Instant.now().isBefore(end)) {
            members.forEach(GroupMember::poll);
        }
    }

    /** The members' assignments are disjoint and together cover {@code partitions}. */
    static boolean sharePartitions(List<GroupMember> members, Set<TopicPartition> partitions) {
        Set<TopicPartition> union = new HashSet<>();
        int total = 0;
        for (GroupMember member : members) {
            union.addAll(member.assignment());
            total += member.assignment().size();
        }
        return total == partitions.size() && union.equals(partitions);
    }
}
