package dev.sluice.interop;

import static dev.sluice.interop.Clients.get;
import static dev.sluice.interop.GroupMember.pollAllFor;
import static dev.sluice.interop.GroupMember.pollAllUntil;
import static dev.sluice.interop.GroupMember.sharePartitions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Classic consumer groups (JoinGroup/SyncGroup, client-side assignors): two
 * members of one group share a topic's partitions, the rebalance listener
 * sees each change, and a static member comes back without a rebalance.
 */
class ClassicGroupTest {

    @RegisterExtension
    static final SluiceBroker BROKER = new SluiceBroker();

    private static final int PARTITIONS = 4;
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
    void rangeAssignorSplitsPartitionsAndEveryRecordIsConsumedOnce() {
        String topic = "classic-range";
        Clients.createTopic(admin, topic, PARTITIONS);
        Map<String, Object> range = classic(RangeAssignor.class);
        try (GroupMember first = GroupMember.subscribe(BROKER, "range-1", "range-group", topic, range);
                GroupMember second = GroupMember.subscribe(BROKER, "range-2", "range-group", topic, range)) {
            List<GroupMember> members = List.of(first, second);

            pollAllUntil(members, "two members with two partitions each",
                    () -> sharePartitions(members, partitions(topic)) && first.assignment().size() == 2);

            for (GroupMember member : members) {
                Set<Integer> indexes = member.assignment().stream()
                        .map(TopicPartition::partition).collect(Collectors.toSet());
                assertTrue(indexes.equals(Set.of(0, 1)) || indexes.equals(Set.of(2, 3)),
                        "range hands out consecutive partitions: " + member);
                assertEquals(member.assignment(), last(member.assigned), "the listener saw the assignment");
            }
            ConsumerGroupDescription group = describe("range-group");
            assertEquals(GroupType.CLASSIC, group.type());
            assertEquals(GroupState.STABLE, group.groupState());
            assertEquals("range", group.partitionAssignor());
            assertEquals(2, group.members().size());

            Clients.produceStrings(BROKER, topic, 40);
            pollAllUntil(members, "40 records", () -> first.records.size() + second.records.size() >= 40);
            assertConsumedOnceFromOwnPartitions(members, 40);
        }
    }

    @Test
    void cooperativeStickyMovesOnlyThePartitionsThatChangeOwner() {
        String topic = "classic-cooperative";
        Clients.createTopic(admin, topic, PARTITIONS);
        Map<String, Object> cooperative = classic(CooperativeStickyAssignor.class);
        try (GroupMember first = GroupMember.subscribe(BROKER, "coop-1", "coop-group", topic, cooperative)) {
            pollAllUntil(List.of(first), "the first member to own every partition",
                    () -> first.assignment().equals(partitions(topic)));
            assertEquals(List.of(partitions(topic)), first.assigned);

            try (GroupMember second = GroupMember.subscribe(BROKER, "coop-2", "coop-group", topic, cooperative)) {
                List<GroupMember> members = List.of(first, second);
                pollAllUntil(members, "two members with two partitions each",
                        () -> sharePartitions(members, partitions(topic)) && first.assignment().size() == 2);

                assertEquals(2, first.revokedInTotal().size(), "only the moved partitions are revoked: " + first);
                assertEquals(second.assignment(), first.revokedInTotal(), "what the first gave up, the second got");
                Set<TopicPartition> added = new HashSet<>();
                second.assigned.forEach(added::addAll);
                assertEquals(second.assignment(), added, "the second's listener saw its partitions added");
                assertEquals("cooperative-sticky", describe("coop-group").partitionAssignor());
            }
        }
    }

    /** A static member that restarts within its session gets its partitions back and nobody else rebalances. */
    @Test
    void staticMemberRejoinsWithItsAssignmentAndNoRebalance() {
        String topic = "classic-static";
        String group = "static-group";
        Clients.createTopic(admin, topic, PARTITIONS);
        GroupMember stayer = GroupMember.subscribe(BROKER, "static-b", group, topic, staticMember("b"));
        try (stayer) {
            Set<TopicPartition> restarterPartitions;
            try (GroupMember restarter = GroupMember.subscribe(BROKER, "static-a", group, topic, staticMember("a"))) {
                List<GroupMember> members = List.of(restarter, stayer);
                pollAllUntil(members, "two static members sharing the partitions",
                        () -> sharePartitions(members, partitions(topic)) && stayer.assignment().size() == 2);
                restarterPartitions = restarter.assignment();
                assertEquals(Set.of(Optional.of("a"), Optional.of("b")), instanceIds(describe(group)));
            }
            // Closed without leaving the group (static members keep their place until their session expires).
            assertEquals(Set.of(Optional.of("a"), Optional.of("b")), instanceIds(describe(group)));
            int stayerRebalances = stayer.assigned.size() + stayer.revoked.size();

            try (GroupMember restarted = GroupMember.subscribe(BROKER, "static-a2", group, topic, staticMember("a"))) {
                List<GroupMember> members = List.of(restarted, stayer);
                pollAllUntil(members, "the restarted member to get partitions",
                        () -> !restarted.assignment().isEmpty());
                pollAllFor(members, Duration.ofSeconds(2));

                assertEquals(restarterPartitions, restarted.assignment(), "the same partitions as before");
                assertEquals(stayerRebalances, stayer.assigned.size() + stayer.revoked.size(),
                        "the other member saw no rebalance: " + stayer);
                assertEquals(GroupState.STABLE, describe(group).groupState());
            }
        }
    }

    private static Map<String, Object> classic(Class<?> assignor) {
        return Map.of(
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic",
                ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor.getName());
    }

    private static Map<String, Object> staticMember(String instanceId) {
        return Map.of(
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic",
                ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId,
                ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, RangeAssignor.class.getName(),
                // Long enough that the closed member is still in the group when it comes back.
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30_000);
    }

    static Set<TopicPartition> partitions(String topic) {
        return IntStream.range(0, PARTITIONS).mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toSet());
    }

    /** Every record arrived exactly once, at the member that owns its partition. */
    static void assertConsumedOnceFromOwnPartitions(List<GroupMember> members, int expected) {
        Set<String> values = new HashSet<>();
        for (GroupMember member : members) {
            for (ConsumerRecord<String, String> record : member.records) {
                assertTrue(values.add(record.value()), "consumed twice: " + record);
                TopicPartition partition = new TopicPartition(record.topic(), record.partition());
                assertTrue(member.assignment().contains(partition), member.name + " got " + record);
            }
        }
        assertEquals(expected, values.size());
    }

    private static ConsumerGroupDescription describe(String group) {
        return get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
    }

    private static Set<Optional<String>> instanceIds(ConsumerGroupDescription group) {
        return group.members().stream().map(MemberDescription::groupInstanceId).collect(Collectors.toSet());
    }

    private static <T> T last(List<T> list) {
        return list.get(list.size() - 1);
    }
}
