#!/usr/bin/env node
// Interop with kafkajs (a pure JavaScript client, pinned in
// scripts/kafkajs/package-lock.json) through a Sluice broker.
//
// Cases (each prints PASS/FAIL and asserts exact data and offsets):
//   - admin: create (also validateOnly, and the errors of invalid topics) /
//     list / delete topics, describeConfigs/alterConfigs, describeCluster,
//     fetchTopicMetadata, fetchTopicOffsets, createPartitions,
//     deleteTopicRecords
//   - produce with no compression and gzip, acks -1 and 1, keys (some null),
//     headers (repeated keys, binary values) and explicit timestamps
//   - a classic consumer group (kafkajs' own RoundRobin assignor) reading from
//     the beginning and committing, then a second consumer of the group
//     resuming from the committed offsets; admin fetchOffsets / resetOffsets /
//     setOffsets / describeGroups / listGroups / deleteGroups
//   - two consumers splitting a 4-partition topic (describeGroups shows both,
//     deleteGroups is refused), and the survivor taking every partition when
//     the other leaves, without re-reading
//   - idempotent producer; transactional producer (commit visible, abort
//     invisible with readUncommitted=false, visible with true);
//     consume-transform-produce with sendOffsets (offsets committed only on
//     commit)
//   - admin.fetchTopicOffsetsByTimestamp
//   - kafkajs -> kcat and kcat -> kafkajs (keys, values, headers, offsets)
//
// Usage: node scripts/interop_kafkajs.mjs HOST:PORT
//   (kafkajs from scripts/kafkajs/node_modules: `npm ci --prefix scripts/kafkajs`)
//   KCAT names the kcat binary; KAFKAJS_LOG=debug|info|warn|error shows
//   kafkajs' own log; KAFKAJS_TIMES=1 prints each case's duration on stderr.
// Prints PASS/FAIL lines; exits non-zero when anything fails.

import { createRequire } from 'node:module'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'

const require = createRequire(new URL('./kafkajs/', import.meta.url))
const {
  Kafka,
  logLevel,
  CompressionTypes,
  ConfigResourceTypes,
  Partitioners,
  AssignerProtocol,
} = require('kafkajs')

const bootstrap = process.argv[2]
if (!bootstrap) {
  console.error('usage: node scripts/interop_kafkajs.mjs HOST:PORT')
  process.exit(2)
}
const KCAT = process.env.KCAT || 'kcat'
const CASE_TIMEOUT_MS = 30_000
const RUN = randomBytes(4).toString('hex')
const LOG_LEVELS = { debug: logLevel.DEBUG, info: logLevel.INFO, warn: logLevel.WARN, error: logLevel.ERROR }

const kafka = new Kafka({
  clientId: 'sluice-interop-kafkajs',
  brokers: [bootstrap],
  logLevel: LOG_LEVELS[process.env.KAFKAJS_LOG] ?? logLevel.NOTHING,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
})

// Consumers share these settings: the broker's group.min.session.timeout.ms
// is 6000 and group.initial.rebalance.delay.ms 3000 (Kafka's defaults);
// short fetch waits and heartbeats make rebalances quick.
const CONSUMER_OPTS = {
  sessionTimeout: 10_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 300,
  maxWaitTimeInMs: 300,
  retry: { retries: 3 },
}

let failures = 0
const cleanups = []

function report(ok, what, detail = '') {
  if (ok) {
    console.log(`PASS ${what}`)
  } else {
    failures += 1
    console.log(`FAIL ${what}: ${detail}`)
  }
}

class Problem extends Error {}

function assert(cond, detail) {
  if (!cond) throw new Problem(detail)
}

function assertEq(got, want, what) {
  const g = JSON.stringify(got)
  const w = JSON.stringify(want)
  if (g !== w) throw new Problem(`${what}: got ${g.slice(0, 400)}, want ${w.slice(0, 400)}`)
}

function withTimeout(promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Problem(`timed out after ${ms} ms ${what}`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitFor(cond, ms, what) {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) {
      throw new Problem(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`)
    }
    await sleep(50)
  }
}

// Runs one case with a deadline; resources registered with `cleanups` are
// released afterwards whatever happened.
async function runCase(what, fn, timeoutMs = CASE_TIMEOUT_MS) {
  const t0 = Date.now()
  let problem = null
  try {
    await withTimeout(fn(), timeoutMs, '')
  } catch (e) {
    problem = e instanceof Problem ? e.message : `${e.name}: ${e.message}${e.type ? ` (${e.type})` : ''}`
  }
  while (cleanups.length) {
    const c = cleanups.pop()
    await withTimeout(Promise.resolve().then(c), 10_000, 'cleaning up').catch(() => {})
  }
  if (process.env.KAFKAJS_TIMES) console.error(`${what}: ${Date.now() - t0} ms`)
  report(problem === null, what, problem ?? '')
  return problem === null
}

const admin = kafka.admin()

async function createTopic(topic, numPartitions = 1, configEntries = []) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1, configEntries }],
    waitForLeaders: true,
  })
  assert(created === true, `createTopics(${topic}) returned ${created}`)
}

async function newProducer(opts = {}) {
  const p = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...opts })
  await p.connect()
  cleanups.push(() => p.disconnect())
  return p
}

function asString(b) {
  return b === null || b === undefined ? null : b.toString()
}

function simplify(topic, partition, m) {
  const headers = {}
  for (const [k, v] of Object.entries(m.headers || {})) {
    headers[k] = Array.isArray(v) ? v.map(x => x.toString('hex')) : v.toString('hex')
  }
  return {
    topic,
    partition,
    offset: m.offset,
    key: asString(m.key),
    value: asString(m.value),
    headers,
    timestamp: m.timestamp,
  }
}

// A group consumer that records everything it reads and every assignment it
// receives. Returns { consumer, records, assignments }.
async function startConsumer({ groupId, topics, readUncommitted = false, autoCommit = true, fromBeginning = true }) {
  const consumer = kafka.consumer({ groupId, readUncommitted, ...CONSUMER_OPTS })
  const state = { consumer, records: [], assignments: [], crashed: null }
  consumer.on(consumer.events.GROUP_JOIN, e => state.assignments.push(e.payload.memberAssignment))
  consumer.on(consumer.events.CRASH, e => {
    state.crashed = e.payload.error
  })
  await consumer.connect()
  cleanups.push(() => consumer.disconnect())
  await consumer.subscribe({ topics, fromBeginning })
  await consumer.run({
    autoCommit,
    eachMessage: async ({ topic, partition, message }) => {
      state.records.push(simplify(topic, partition, message))
    },
  })
  return state
}

function currentAssignment(state) {
  return state.assignments.length ? state.assignments[state.assignments.length - 1] : null
}

function countAssigned(state) {
  const a = currentAssignment(state)
  return a ? Object.values(a).reduce((n, ps) => n + ps.length, 0) : 0
}

// Reads until `n` records arrived, then 1 s more to catch extra records.
async function readRecords(state, n, what) {
  await waitFor(
    () => state.crashed || state.records.length >= n,
    20_000,
    () => `${n} records ${what} (have ${state.records.length})`
  )
  assert(!state.crashed, `consumer crashed: ${state.crashed}`)
  await sleep(1000)
  return state.records
}

function sortRecords(records) {
  return [...records].sort((a, b) =>
    a.topic !== b.topic ? (a.topic < b.topic ? -1 : 1) : a.partition - b.partition || Number(a.offset) - Number(b.offset)
  )
}

const hex = s => Buffer.from(s).toString('hex')

// ---- admin ----------------------------------------------------------------

async function adminTopics() {
  const names = [0, 1, 2].map(i => `interop-js-admin-${i}-${RUN}`)
  const created = await admin.createTopics({
    topics: names.map((topic, i) => ({ topic, numPartitions: i + 1, replicationFactor: 1 })),
    waitForLeaders: true,
  })
  assertEq(created, true, 'createTopics')
  const again = await admin.createTopics({ topics: [{ topic: names[0], numPartitions: 1 }] })
  assertEq(again, false, 'createTopics of an existing topic')
  // validateOnly creates nothing. (waitForLeaders must be off: kafkajs would
  // wait for the leaders of a topic that does not exist, also with Kafka.)
  const checkOnly = `interop-js-admin-validate-${RUN}`
  const validated = await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic: checkOnly, numPartitions: 3 }] })
  assertEq(validated, true, 'createTopics validateOnly')
  let errors = null
  await admin
    .createTopics({ waitForLeaders: false, topics: [{ topic: 'bad/name' }, { topic: `${checkOnly}-0`, numPartitions: 0 }] })
    .catch(e => {
      errors = (e.errors || [e]).map(x => x.type || x.message)
    })
  assertEq(errors, ['INVALID_TOPIC_EXCEPTION', 'INVALID_PARTITIONS'], 'createTopics errors')
  let listed = await admin.listTopics()
  assert(!listed.some(t => t.startsWith(checkOnly)), `validateOnly or invalid topics were created: ${listed.filter(t => t.startsWith(checkOnly))}`)
  for (const n of names) assert(listed.includes(n), `listTopics lacks ${n}: ${listed}`)
  const meta = await admin.fetchTopicMetadata({ topics: names })
  assertEq(
    meta.topics.map(t => [t.name, t.partitions.length]).sort(),
    names.map((n, i) => [n, i + 1]),
    'partition counts'
  )
  await admin.deleteTopics({ topics: [names[1], names[2]], timeout: 10_000 })
  listed = await admin.listTopics()
  assert(listed.includes(names[0]), `listTopics lost ${names[0]}`)
  assert(!listed.includes(names[1]) && !listed.includes(names[2]), `deleted topics still listed: ${listed.filter(t => names.includes(t))}`)
  await admin.deleteTopics({ topics: [names[0]], timeout: 10_000 })
}

async function adminConfigs() {
  const topic = `interop-js-configs-${RUN}`
  await createTopic(topic, 1, [
    { name: 'cleanup.policy', value: 'compact' },
    { name: 'retention.ms', value: '86400000' },
  ])
  const describe = async () => {
    const r = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy', 'retention.ms', 'max.message.bytes'] }],
      includeSynonyms: false,
    })
    assertEq(r.resources.map(x => [x.errorCode, x.resourceName]), [[0, topic]], 'describeConfigs resources')
    const out = {}
    for (const e of r.resources[0].configEntries) out[e.configName] = [e.configValue, e.isDefault]
    return out
  }
  const before = await describe()
  assertEq(before['cleanup.policy'], ['compact', false], 'cleanup.policy as created')
  assertEq(before['retention.ms'], ['86400000', false], 'retention.ms as created')
  assert(before['max.message.bytes'] && before['max.message.bytes'][1] === true, `max.message.bytes: ${JSON.stringify(before['max.message.bytes'])}`)
  // AlterConfigs (not incremental) replaces the whole set of overrides:
  // cleanup.policy goes back to its default.
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  })
  const after = await describe()
  assertEq(after['retention.ms'], ['3600000', false], 'retention.ms after alterConfigs')
  assertEq(after['cleanup.policy'], ['delete', true], 'cleanup.policy after alterConfigs')
  // validateOnly changes nothing; an invalid value is refused.
  await admin.alterConfigs({
    validateOnly: true,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '1000' }] }],
  })
  assertEq((await describe())['retention.ms'], ['3600000', false], 'retention.ms after validateOnly')
  let refused = null
  await admin
    .alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'cleanup.policy', value: 'bogus' }] }],
    })
    .catch(e => {
      refused = e.type || e.message
    })
  assertEq(refused, 'INVALID_CONFIG', 'alterConfigs cleanup.policy=bogus')
}

async function adminMetadata() {
  const topic = `interop-js-meta-${RUN}`
  await createTopic(topic, 4)
  const cluster = await admin.describeCluster()
  assert(cluster.brokers.length === 1, `describeCluster brokers: ${JSON.stringify(cluster.brokers)}`)
  const node = cluster.brokers[0].nodeId
  assertEq(cluster.controller, node, 'controller')
  assert(cluster.clusterId, 'no clusterId')
  const meta = await admin.fetchTopicMetadata({ topics: [topic] })
  assertEq(meta.topics.length, 1, 'topics')
  const parts = meta.topics[0].partitions
    .map(p => [p.partitionId, p.partitionErrorCode, p.leader, p.replicas, p.isr])
    .sort((a, b) => a[0] - b[0])
  assertEq(parts, [0, 1, 2, 3].map(i => [i, 0, node, [node], [node]]), 'partition metadata')
  const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
  assertEq(
    offsets.map(o => [o.partition, o.low, o.high]),
    [0, 1, 2, 3].map(i => [i, '0', '0']),
    'fetchTopicOffsets of an empty topic'
  )
  let missing = null
  await admin.fetchTopicMetadata({ topics: [`interop-js-missing-${RUN}`] }).catch(e => {
    missing = e.type || e.message
  })
  // Admin metadata requests do not create topics (allowAutoTopicCreation is
  // false for the admin client).
  assertEq(missing, 'UNKNOWN_TOPIC_OR_PARTITION', 'fetchTopicMetadata of a missing topic')
}

async function adminPartitionsAndRecords() {
  const topic = `interop-js-partitions-${RUN}`
  await createTopic(topic, 1)
  await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })
  const meta = await admin.fetchTopicMetadata({ topics: [topic] })
  assertEq(meta.topics[0].partitions.map(p => p.partitionId).sort(), [0, 1, 2], 'partitions after createPartitions')
  const p = await newProducer()
  await p.send({ topic, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ partition: 2, value: `r-${i}` })) })
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 2, offset: '4' }] })
  const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
  assertEq(offsets.map(o => [o.partition, o.low, o.high]), [[0, '0', '0'], [1, '0', '0'], [2, '4', '10']], 'offsets after deleteTopicRecords')
}

// ---- produce, consume in a group, resume -----------------------------------

const PRODUCE_TOPIC = `interop-js-produce-${RUN}`
const PER_PARTITION = 50
const BASE_TS = Date.now() - 3_600_000
// Partition p of PRODUCE_TOPIC gets the records of one (codec, acks) variant.
const VARIANTS = [
  { codec: 'none', compression: CompressionTypes.None, acks: -1 },
  { codec: 'gzip', compression: CompressionTypes.GZIP, acks: -1 },
  { codec: 'none', compression: CompressionTypes.None, acks: 1 },
  { codec: 'gzip', compression: CompressionTypes.GZIP, acks: 1 },
]

function produceMessages(p) {
  const out = []
  for (let i = 0; i < PER_PARTITION; i++) {
    const headers = { seq: String(i) }
    if (i % 3 === 0) headers.bin = Buffer.from([0xfe, 0x01, 0x00, 0x7f])
    if (i % 5 === 0) headers.dup = ['first', 'second']
    out.push({
      partition: p,
      key: i % 10 === 0 ? null : `key-${p}-${i}`,
      value: `kafkajs p${p} value ${i} ` + 'x'.repeat(i % 40),
      headers,
      timestamp: String(BASE_TS + i),
    })
  }
  return out
}

function expectedRecord(p, m, offset) {
  const headers = {}
  for (const [k, v] of Object.entries(m.headers)) {
    headers[k] = Array.isArray(v) ? v.map(hex) : hex(v)
  }
  return { topic: PRODUCE_TOPIC, partition: p, offset: String(offset), key: m.key, value: m.value, headers, timestamp: m.timestamp }
}

const produced = {} // partition -> messages

async function produceVariants() {
  await createTopic(PRODUCE_TOPIC, VARIANTS.length)
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false })
  await producer.connect()
  for (const [p, v] of VARIANTS.entries()) {
    await runCase(`kafkajs produce (${v.codec}, acks=${v.acks}) with keys, headers, timestamps`, async () => {
      const messages = produceMessages(p)
      produced[p] = messages
      // Two requests: base offsets 0 and 20.
      const r1 = await producer.send({ topic: PRODUCE_TOPIC, acks: v.acks, compression: v.compression, messages: messages.slice(0, 20) })
      const r2 = await producer.send({ topic: PRODUCE_TOPIC, acks: v.acks, compression: v.compression, messages: messages.slice(20) })
      assertEq(
        [...r1, ...r2].map(r => [r.topicName, r.partition, r.errorCode, r.baseOffset]),
        [[PRODUCE_TOPIC, p, 0, '0'], [PRODUCE_TOPIC, p, 0, '20']],
        'produce responses'
      )
    })
  }
  await producer.disconnect().catch(() => {})
}

const COMMIT_AT = 40

async function consumeAndResume() {
  const groupId = `interop-js-group-${RUN}`
  const want = []
  for (const p of Object.keys(produced).map(Number)) {
    produced[p].forEach((m, i) => want.push(expectedRecord(p, m, i)))
  }
  let ok = await runCase('kafkajs consumer group reads from the beginning (every codec/acks), commits', async () => {
    assertEq(Object.keys(produced).length, VARIANTS.length, 'partitions produced')
    const c = await startConsumer({ groupId, topics: [PRODUCE_TOPIC], autoCommit: false })
    const got = sortRecords(await readRecords(c, want.length, 'from the beginning'))
    assertEq(currentAssignment(c), { [PRODUCE_TOPIC]: [0, 1, 2, 3] }, 'assignment')
    assertEq(got.length, want.length, 'records read')
    for (let i = 0; i < want.length; i++) assertEq(got[i], want[i], `record ${i}`)
    // Commit part of each partition; the next consumer resumes there.
    await c.consumer.commitOffsets(VARIANTS.map((_, p) => ({ topic: PRODUCE_TOPIC, partition: p, offset: String(COMMIT_AT) })))
    const offsets = await admin.fetchOffsets({ groupId, topics: [PRODUCE_TOPIC] })
    assertEq(
      offsets[0].partitions.map(x => [x.partition, x.offset]).sort(),
      VARIANTS.map((_, p) => [p, String(COMMIT_AT)]),
      'fetchOffsets after commit'
    )
  })
  ok =
    (await runCase('kafkajs second consumer of the group resumes from the committed offsets', async () => {
      assert(ok, 'the first consumer failed')
      const c = await startConsumer({ groupId, topics: [PRODUCE_TOPIC], autoCommit: true })
      const rest = want.filter(r => Number(r.offset) >= COMMIT_AT)
      const got = sortRecords(await readRecords(c, rest.length, 'after the commit'))
      assertEq(got.length, rest.length, 'records read after the commit')
      for (let i = 0; i < rest.length; i++) assertEq(got[i], rest[i], `record ${i} after the commit`)
      await c.consumer.disconnect() // commits what it read (autoCommit)
      const offsets = await admin.fetchOffsets({ groupId, topics: [PRODUCE_TOPIC] })
      assertEq(
        offsets[0].partitions.map(x => [x.partition, x.offset]).sort(),
        VARIANTS.map((_, p) => [p, String(PER_PARTITION)]),
        'fetchOffsets after autoCommit'
      )
    })) && ok
  await runCase('kafkajs admin listGroups / describeGroups of an empty group', async () => {
    const { groups } = await admin.listGroups()
    const mine = groups.filter(g => g.groupId === groupId)
    assertEq(mine, [{ groupId, protocolType: 'consumer' }], 'listGroups')
    const d = await admin.describeGroups([groupId])
    assertEq(
      d.groups.map(g => [g.errorCode, g.groupId, g.state, g.protocolType, g.members.length]),
      [[0, groupId, 'Empty', 'consumer', 0]],
      'describeGroups'
    )
  })
  await runCase('kafkajs admin resetOffsets / setOffsets / fetchOffsets', async () => {
    assert(ok, 'the group has no committed offsets')
    await admin.resetOffsets({ groupId, topic: PRODUCE_TOPIC, earliest: true })
    const fetch = async () =>
      (await admin.fetchOffsets({ groupId, topics: [PRODUCE_TOPIC] }))[0].partitions.map(x => [x.partition, x.offset]).sort()
    // kafkajs commits the sentinel -2 (earliest) as the group's offset, as
    // Kafka stores it; the group's consumers resolve it to the log start.
    assertEq(await fetch(), VARIANTS.map((_, p) => [p, '-2']), 'fetchOffsets after resetOffsets(earliest)')
    await admin.setOffsets({ groupId, topic: PRODUCE_TOPIC, partitions: [{ partition: 2, offset: '7' }] })
    const want = VARIANTS.map((_, p) => [p, p === 2 ? '7' : '-2'])
    assertEq(await fetch(), want, 'fetchOffsets after setOffsets(partition 2 = 7)')
    // A consumer reads partitions 0, 1 and 3 from offset 0 (kafkajs resolves
    // -2 with its fromBeginning setting), and 2 from 7.
    const c = await startConsumer({ groupId, topics: [PRODUCE_TOPIC], autoCommit: false, fromBeginning: true })
    const got = await readRecords(c, 4 * PER_PARTITION - 7, 'after the reset')
    const firsts = VARIANTS.map((_, p) => got.filter(r => r.partition === p).map(r => Number(r.offset)))
    assertEq(
      firsts.map(offs => [offs.length, offs[0]]),
      VARIANTS.map((_, p) => (p === 2 ? [PER_PARTITION - 7, 7] : [PER_PARTITION, 0])),
      'records read per partition [count, first offset]'
    )
  }, 60_000) // kafkajs joins the group for each reset and waits 5 s in it
  await runCase('kafkajs admin deleteGroups', async () => {
    assertEq(await admin.deleteGroups([groupId]), [{ groupId, errorCode: 0 }], 'deleteGroups')
    const { groups } = await admin.listGroups()
    assert(!groups.some(g => g.groupId === groupId), 'listGroups still lists the deleted group')
    const offsets = await admin.fetchOffsets({ groupId, topics: [PRODUCE_TOPIC] })
    assertEq(offsets[0].partitions.map(x => x.offset), ['-1', '-1', '-1', '-1'], 'fetchOffsets of the deleted group')
  })
}

// ---- two consumers split a topic ------------------------------------------

async function splitGroup() {
  const topic = `interop-js-split-${RUN}`
  const groupId = topic
  await createTopic(topic, 4)
  const a = await startConsumer({ groupId, topics: [topic] })
  await waitFor(() => countAssigned(a) === 4, 20_000, 'the first member to own 4 partitions')
  const b = await startConsumer({ groupId, topics: [topic] })
  await waitFor(
    () => countAssigned(a) === 2 && countAssigned(b) === 2,
    20_000,
    () => `a 2+2 split (have ${countAssigned(a)}+${countAssigned(b)})`
  )
  const owned = s => currentAssignment(s)[topic].slice().sort()
  assertEq([...owned(a), ...owned(b)].sort(), [0, 1, 2, 3], 'partitions of both members')
  const d = await admin.describeGroups([groupId])
  const g = d.groups[0]
  assertEq([g.state, g.protocolType, g.protocol, g.members.length], ['Stable', 'consumer', 'RoundRobinAssigner', 2], 'describeGroups of the running group')
  const described = g.members
    .map(m => AssignerProtocol.MemberAssignment.decode(m.memberAssignment).assignment[topic].slice().sort())
    .sort()
  assertEq(described, [owned(a), owned(b)].sort(), 'member assignments in describeGroups')
  let deleteError = null
  await admin.deleteGroups([groupId]).catch(e => {
    deleteError = (e.groups || []).map(x => [x.groupId, x.error && x.error.type])
  })
  assertEq(deleteError, [[groupId, 'NON_EMPTY_GROUP']], 'deleteGroups of a running group')

  const producer = await newProducer()
  const values = Array.from({ length: 200 }, (_, i) => `split-${i}`)
  await producer.send({ topic, acks: -1, messages: values.map((value, i) => ({ value, partition: i % 4 })) })
  await waitFor(() => a.records.length + b.records.length >= values.length, 20_000, 'every record')
  await sleep(1000)
  const readBy = s => s.records.map(r => r.value)
  assertEq([...readBy(a), ...readBy(b)].sort(), values.slice().sort(), 'records read by the two members')
  for (const [s, name] of [[a, 'first'], [b, 'second']]) {
    const mine = owned(s)
    assert(s.records.every(r => mine.includes(r.partition)), `the ${name} member read a partition it does not own`)
  }
  // The second member leaves (LeaveGroup, after committing): the first gets
  // every partition and reads only the new records.
  await b.consumer.disconnect()
  await waitFor(() => countAssigned(a) === 4, 20_000, 'the survivor to own 4 partitions')
  const more = Array.from({ length: 40 }, (_, i) => `after-${i}`)
  const seen = a.records.length
  await producer.send({ topic, acks: -1, messages: more.map((value, i) => ({ value, partition: i % 4 })) })
  await waitFor(() => a.records.length - seen >= more.length, 20_000, 'the records produced after the rebalance')
  await sleep(1000)
  assertEq(a.records.slice(seen).map(r => r.value).sort(), more.slice().sort(), 'records read after the rebalance')
}

// ---- idempotence and transactions -------------------------------------------

async function idempotent() {
  const topic = `interop-js-idempotent-${RUN}`
  await createTopic(topic, 2)
  const p = await newProducer({ idempotent: true, maxInFlightRequests: 1 })
  const results = []
  for (let batch = 0; batch < 3; batch++) {
    const r = await p.send({
      topic,
      acks: -1,
      compression: batch === 1 ? CompressionTypes.GZIP : CompressionTypes.None,
      messages: Array.from({ length: 10 }, (_, i) => ({ partition: 0, value: `idem-${batch * 10 + i}` })).concat([
        { partition: 1, value: `idem-p1-${batch}` },
      ]),
    })
    results.push(...r.map(x => [x.partition, x.errorCode, x.baseOffset]).sort())
  }
  assertEq(results, [[0, 0, '0'], [1, 0, '0'], [0, 0, '10'], [1, 0, '1'], [0, 0, '20'], [1, 0, '2']], 'produce responses')
  const c = await startConsumer({ groupId: topic, topics: [topic] })
  const got = sortRecords(await readRecords(c, 33, 'produced idempotently')).map(r => [r.partition, r.offset, r.value])
  const want = Array.from({ length: 30 }, (_, i) => [0, String(i), `idem-${i}`]).concat(
    [0, 1, 2].map(i => [1, String(i), `idem-p1-${i}`])
  )
  assertEq(got, want, 'records')
}

const TXN_TOPIC = `interop-js-txn-${RUN}`

async function transactions() {
  await createTopic(TXN_TOPIC, 1)
  const p = await newProducer({ transactionalId: `interop-js-txn-${RUN}`, idempotent: true, maxInFlightRequests: 1 })
  const batch = (label, from) => Array.from({ length: 5 }, (_, i) => ({ partition: 0, key: `k${from + i}`, value: `${label}-${from + i}` }))
  for (const [label, from, commit] of [
    ['committed', 0, true],
    ['aborted', 0, false],
    ['committed', 5, true],
  ]) {
    const txn = await p.transaction()
    await txn.send({ topic: TXN_TOPIC, messages: batch(label, from) })
    if (commit) await txn.commit()
    else await txn.abort()
  }
  // committed 0..4 at offsets 0..4, a marker at 5, aborted at 6..10, a
  // marker at 11, committed 5..9 at 12..16, a marker at 17.
  const offsets = await admin.fetchTopicOffsets(TXN_TOPIC)
  assertEq(offsets.map(o => [o.partition, o.low, o.high]), [[0, '0', '18']], 'fetchTopicOffsets after three transactions')
}

async function transactionsRead(readUncommitted) {
  const c = await startConsumer({ groupId: `interop-js-txn-${readUncommitted}-${RUN}`, topics: [TXN_TOPIC], readUncommitted })
  const want = readUncommitted
    ? [
        ...[0, 1, 2, 3, 4].map(i => [String(i), `committed-${i}`]),
        ...[0, 1, 2, 3, 4].map(i => [String(6 + i), `aborted-${i}`]),
        ...[5, 6, 7, 8, 9].map(i => [String(7 + i), `committed-${i}`]),
      ]
    : [
        ...[0, 1, 2, 3, 4].map(i => [String(i), `committed-${i}`]),
        ...[5, 6, 7, 8, 9].map(i => [String(7 + i), `committed-${i}`]),
      ]
  const got = (await readRecords(c, want.length, 'of the transactions')).map(r => [r.offset, r.value])
  assertEq(got, want, 'records')
}

async function consumeTransformProduce() {
  const input = `interop-js-ctp-in-${RUN}`
  const output = `interop-js-ctp-out-${RUN}`
  const groupId = `interop-js-ctp-${RUN}`
  await createTopic(input, 1)
  await createTopic(output, 1)
  const plain = await newProducer()
  await plain.send({ topic: input, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ value: `in-${i}` })) })
  // The consumer stays in the group while the transactions send its offsets.
  const c = await startConsumer({ groupId, topics: [input], autoCommit: false })
  const inRecords = await readRecords(c, 10, 'of the input')
  assertEq(inRecords.map(r => [r.offset, r.value]), Array.from({ length: 10 }, (_, i) => [String(i), `in-${i}`]), 'input records')
  const p = await newProducer({ transactionalId: `interop-js-ctp-${RUN}`, idempotent: true, maxInFlightRequests: 1 })
  const committed = async () => (await admin.fetchOffsets({ groupId, topics: [input] }))[0].partitions.map(x => x.offset)
  const step = async (from, to, commit, before) => {
    const txn = await p.transaction()
    await txn.send({
      topic: output,
      messages: inRecords.slice(from, to).map(r => ({ value: r.value.replace('in-', 'out-') })),
    })
    await txn.sendOffsets({
      consumerGroupId: groupId,
      topics: [{ topic: input, partitions: [{ partition: 0, offset: String(to) }] }],
    })
    assertEq(await committed(), [before], `the group's offset while the transaction sending ${to} is open`)
    if (commit) await txn.commit()
    else await txn.abort()
  }
  await step(0, 5, true, '-1')
  assertEq(await committed(), ['5'], 'the group offset after the committed transaction')
  await step(5, 10, false, '5')
  assertEq(await committed(), ['5'], 'the group offset after the aborted transaction')
  await c.consumer.disconnect()
  // A read_committed consumer of the output sees the committed half only.
  const out = await startConsumer({ groupId: `${groupId}-out`, topics: [output] })
  const got = (await readRecords(out, 5, 'of the output')).map(r => [r.offset, r.value])
  assertEq(got, [0, 1, 2, 3, 4].map(i => [String(i), `out-${i}`]), 'output records')
}

// ---- timestamps -------------------------------------------------------------

async function offsetsByTimestamp() {
  const topic = `interop-js-timestamps-${RUN}`
  await createTopic(topic, 2)
  const p = await newProducer()
  const base = Date.now() - 600_000
  await p.send({
    topic,
    acks: -1,
    messages: Array.from({ length: 20 }, (_, i) => ({ partition: 0, value: `ts-${i}`, timestamp: String(base + i * 1000) })),
  })
  await p.send({
    topic,
    acks: -1,
    compression: CompressionTypes.GZIP,
    messages: Array.from({ length: 20 }, (_, i) => ({ partition: 1, value: `ts-${i}`, timestamp: String(base + i * 2000) })),
  })
  const at = async ts => (await admin.fetchTopicOffsetsByTimestamp(topic, ts)).sort((a, b) => a.partition - b.partition).map(x => [x.partition, x.offset])
  assertEq(await at(base + 5500), [[0, '6'], [1, '3']], 'offsets for base+5.5s')
  assertEq(await at(base + 10_000), [[0, '10'], [1, '5']], 'offsets for base+10s')
  assertEq(await at(base - 1), [[0, '0'], [1, '0']], 'offsets before the first record')
  // After the last record: the broker answers -1 and kafkajs substitutes the
  // high watermark.
  assertEq(await at(base + 31_000), [[0, '20'], [1, '16']], 'offsets for base+31s')
  assertEq(await at(base + 100_000), [[0, '20'], [1, '20']], 'offsets after every record')
}

// ---- kcat <-> kafkajs -------------------------------------------------------

function run(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 20_000, maxBuffer: 10 << 20, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err) reject(new Problem(`${cmd} ${args.join(' ')}: ${err.message} ${stderr.toString().slice(0, 300)}`))
      else resolve(stdout)
    })
    if (input !== undefined) child.stdin.end(input)
  })
}

// kcat prints header values as C strings: up to the first NUL byte.
function kcatText(x) {
  const b = Buffer.from(x)
  const nul = b.indexOf(0)
  return (nul < 0 ? b : b.subarray(0, nul)).toString('latin1')
}

async function kafkajsToKcat() {
  // Partition 1 of PRODUCE_TOPIC: gzip, acks=-1, written by kafkajs.
  assert(produced[1], 'nothing was produced')
  const out = await run(KCAT, ['-b', bootstrap, '-C', '-t', PRODUCE_TOPIC, '-p', '1', '-o', 'beginning', '-e', '-q', '-f', '%o|%k|%s|%T|%h\n'])
  const headersText = m =>
    Object.entries(m.headers)
      .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map(x => `${k}=${kcatText(x)}`))
      .join(',')
  const want = produced[1].map((m, i) => `${i}|${m.key ?? ''}|${m.value}|${m.timestamp}|${headersText(m)}`)
  const got = out.toString('latin1').split('\n').slice(0, -1)
  assertEq(got.length, want.length, 'records read by kcat')
  for (let i = 0; i < want.length; i++) assertEq(got[i], want[i], `record ${i} as read by kcat`)
}

async function kcatToKafkajs() {
  const topic = `interop-js-from-kcat-${RUN}`
  await createTopic(topic, 1)
  const lines = Array.from({ length: 30 }, (_, i) => `kcat-key-${i}:kcat value ${i}`)
  await run(KCAT, ['-b', bootstrap, '-P', '-t', topic, '-p', '0', '-K:', '-z', 'gzip', '-H', 'origin=kcat', '-H', 'n=1'], lines.join('\n') + '\n')
  const c = await startConsumer({ groupId: topic, topics: [topic] })
  const got = (await readRecords(c, lines.length, 'produced by kcat')).map(r => [r.offset, r.key, r.value, r.headers])
  const want = lines.map((l, i) => [String(i), `kcat-key-${i}`, `kcat value ${i}`, { origin: hex('kcat'), n: hex('1') }])
  assertEq(got, want, 'records')
}

// ---- main -------------------------------------------------------------------

async function main() {
  const t0 = Date.now()
  await withTimeout(admin.connect(), 10_000, 'connecting the admin client')
  await runCase('kafkajs admin createTopics / listTopics / deleteTopics', adminTopics)
  await runCase('kafkajs admin describeConfigs / alterConfigs', adminConfigs)
  await runCase('kafkajs admin describeCluster / fetchTopicMetadata / fetchTopicOffsets', adminMetadata)
  await runCase('kafkajs admin createPartitions / deleteTopicRecords', adminPartitionsAndRecords)
  await produceVariants()
  await consumeAndResume()
  await runCase('kafkajs two consumers split a 4-partition topic, rebalance when one leaves', splitGroup)
  await runCase('kafkajs idempotent producer', idempotent)
  const txnOk = await runCase('kafkajs transactional producer: commit, abort, commit', transactions)
  if (txnOk) {
    await runCase('kafkajs transactions -> kafkajs consumer (readUncommitted=false)', () => transactionsRead(false))
    await runCase('kafkajs transactions -> kafkajs consumer (readUncommitted=true)', () => transactionsRead(true))
  } else {
    report(false, 'kafkajs transactions -> kafkajs consumers', 'the transactional producer failed')
  }
  await runCase('kafkajs consume-transform-produce: sendOffsets commits offsets with the transaction', consumeTransformProduce)
  await runCase('kafkajs admin fetchTopicOffsetsByTimestamp', offsetsByTimestamp)
  await runCase('kafkajs (gzip, headers) -> kcat', kafkajsToKcat)
  await runCase('kcat (gzip, headers) -> kafkajs consumer group', kcatToKafkajs)
  await admin.disconnect().catch(() => {})
  console.log(`kafkajs interop took ${((Date.now() - t0) / 1000).toFixed(1)} s`)
}

main()
  .catch(e => {
    report(false, 'kafkajs interop', `${e.name}: ${e.message}`)
  })
  .finally(() => process.exit(failures ? 1 : 0))
