package dev.sluice.interop;

import static dev.sluice.interop.ClassicGroupTest.assertConsumedOnceFromOwnPartitions;
import static dev.sluice.interop.ClassicGroupTest.partitions;
import static dev.sluice.interop.Clients.get;
import static dev.sluice.interop.GroupMember.pollAllUntil;
import static dev.sluice.interop.GroupMember.sharePartitions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberAssignment;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * KIP-848 consumer groups ({@code group.protocol=consumer}): the broker
 * assigns, members reconcile incrementally through ConsumerGroupHeartbeat.
 */
class ConsumerProtocolGroupTest {

    @RegisterExtension
    static final SluiceBroker BROKER = new SluiceBroker();

    private static final Map<String, Object> CONSUMER_PROTOCOL =
            Map.of(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
    private static Admin admin;

    @BeforeAll
    static void openAdmin() {
        admin = Clients.admin(BROKER);
    }

    @AfterAll
    static void closeAdmin() {
        admin.close();
    }

    @Test
    void membersShareReconcileAndCommit() {
        String topic = "kip848-share";
        String group = "kip848-group";
        Clients.createTopic(admin, topic, 4);
        try (GroupMember first = GroupMember.subscribe(BROKER, "kip848-1", group, topic, CONSUMER_PROTOCOL)) {
            pollAllUntil(List.of(first), "the first member to own every partition",
                    () -> first.assignment().equals(partitions(topic)));

            try (GroupMember second = GroupMember.subscribe(BROKER, "kip848-2", group, topic, CONSUMER_PROTOCOL)) {
                List<GroupMember> members = List.of(first, second);
                pollAllUntil(members, "two members with two partitions each",
                        () -> sharePartitions(members, partitions(topic)) && first.assignment().size() == 2);
                assertEquals(second.assignment(), first.revokedInTotal(), "only the moved partitions are revoked");

                ConsumerGroupDescription description = describe(group);
                assertEquals(GroupType.CONSUMER, description.type());
                assertEquals("uniform", description.partitionAssignor(), "the broker's default assignor");
                // The coordinator learns what a member owns from its next heartbeat.
                Set<Set<TopicPartition>> owned = Set.of(first.assignment(), second.assignment());
                pollAllUntil(members, "the group description to show the members' assignments",
                        () -> owned.equals(memberAssignments(describe(group))));

                Clients.produceStrings(BROKER, topic, 40);
                pollAllUntil(members, "40 records", () -> first.records.size() + second.records.size() >= 40);
                assertConsumedOnceFromOwnPartitions(members, 40);
                members.forEach(member -> member.consumer.commitSync());
            }
            pollAllUntil(List.of(first), "the remaining member to take every partition back",
                    () -> first.assignment().equals(partitions(topic)));
        }
        Map<TopicPartition, OffsetAndMetadata> committed =
                get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
        long total = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
        assertEquals(partitions(topic), committed.keySet());
        assertEquals(40, total, "committed offsets add up to every record consumed: " + committed);
    }

    @Test
    void rangeServerAssignorOnRequest() {
        String topic = "kip848-range";
        String group = "kip848-range-group";
        Clients.createTopic(admin, topic, 4);
        Map<String, Object> range = Map.of(
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer",
                ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, "range");
        try (GroupMember first = GroupMember.subscribe(BROKER, "kip848-range-1", group, topic, range);
                GroupMember second = GroupMember.subscribe(BROKER, "kip848-range-2", group, topic, range)) {
            List<GroupMember> members = List.of(first, second);
            pollAllUntil(members, "two members with two partitions each",
                    () -> sharePartitions(members, partitions(topic)) && first.assignment().size() == 2);

            for (GroupMember member : members) {
                Set<Integer> indexes =
                        member.assignment().stream().map(TopicPartition::partition).collect(Collectors.toSet());
                assertTrue(indexes.equals(Set.of(0, 1)) || indexes.equals(Set.of(2, 3)),
                        "range hands out consecutive partitions: " + member);
            }
            assertEquals("range", describe(group).partitionAssignor());
            pollAllUntil(members, "the group to be stable", () -> describe(group).groupState() == GroupState.STABLE);
        }
    }

    /** A static member that restarts within its session gets its partitions back; the other member keeps its own. */
    @Test
    void staticMemberRejoinsWithItsAssignment() {
        String topic = "kip848-static";
        String group = "kip848-static-group";
        Clients.createTopic(admin, topic, 4);
        try (GroupMember stayer = GroupMember.subscribe(BROKER, "kip848-b", group, topic, staticMember("b"))) {
            Set<TopicPartition> restarterPartitions;
            try (GroupMember restarter = GroupMember.subscribe(BROKER, "kip848-a", group, topic, staticMember("a"))) {
                List<GroupMember> members = List.of(restarter, stayer);
                pollAllUntil(members, "two static members sharing the partitions",
                        () -> sharePartitions(members, partitions(topic)) && stayer.assignment().size() == 2);
                restarterPartitions = restarter.assignment();
            }
            Set<TopicPartition> stayerPartitions = stayer.assignment();
            int stayerRevocations = stayer.revoked.size();

            try (GroupMember restarted = GroupMember.subscribe(BROKER, "kip848-a2", group, topic, staticMember("a"))) {
                List<GroupMember> members = List.of(restarted, stayer);
                pollAllUntil(members, "the restarted member to get partitions",
                        () -> !restarted.assignment().isEmpty());
                GroupMember.pollAllFor(members, Duration.ofSeconds(2));

                assertEquals(restarterPartitions, restarted.assignment(), "the same partitions as before");
                assertEquals(stayerPartitions, stayer.assignment());
                assertEquals(stayerRevocations, stayer.revoked.size(), "nothing was taken from the other: " + stayer);
                assertEquals(Set.of(Optional.of("a"), Optional.of("b")), describe(group).members().stream()
                        .map(MemberDescription::groupInstanceId).collect(Collectors.toSet()));
            }
        }
    }

    /** A regex subscription (KIP-848's broker-side SubscribedTopicRegex) picks up matching topics as they appear. */
    @Test
    void patternSubscriptionFollowsNewTopics() {
        Clients.createTopic(admin, "kip848-re-one", 1);
        Clients.createTopic(admin, "kip848-other", 1);
        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER, Map.of(
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer",
                ConsumerConfig.GROUP_ID_CONFIG, "kip848-regex-group"))) {
            consumer.subscribe(new SubscriptionPattern("kip848-re-.*"));
            Clients.pollUntil(consumer, "the matching topic to be assigned",
                    () -> consumer.assignment().equals(Set.of(new TopicPartition("kip848-re-one", 0))));

            Clients.createTopic(admin, "kip848-re-two", 1);
            Clients.produceStrings(BROKER, "kip848-re-two", 3);

            // The records can only come once the new topic is assigned.
            List<ConsumerRecord<String, String>> records = Clients.pollUntilCount(consumer, 3);
            assertTrue(records.stream().allMatch(r -> r.topic().equals("kip848-re-two")), "records: " + records);
            assertEquals(Set.of(new TopicPartition("kip848-re-one", 0), new TopicPartition("kip848-re-two", 0)),
                    consumer.assignment());
        }
    }

    private static Map<String, Object> staticMember(String instanceId) {
        return Map.of(
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer",
                ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
    }

    private static ConsumerGroupDescription describe(String group) {
        return get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
    }

    private static Set<Set<TopicPartition>> memberAssignments(ConsumerGroupDescription description) {
        return description.members().stream()
                .map(MemberDescription::assignment)
                .map(MemberAssignment::topicPartitions)
                .collect(Collectors.toSet());
    }
}
