// Creates a topic, produces keyed records with acks=all and prints the
// delivery reports and watermarks as JSON, using KafkaJS unchanged.
// Usage: node produce.js BOOTSTRAP TOPIC PARTITIONS COUNT
const { Kafka, logLevel, Partitioners } = require('kafkajs')

const [bootstrap, topic, partitions, count] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'sluice-e2e', brokers: [bootstrap], logLevel: logLevel.ERROR })

;(async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: Number(partitions) }], waitForLeaders: true })
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const messages = Array.from({ length: Number(count) }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}` }))
  const reports = await producer.send({ topic, acks: -1, messages })
  const offsets = await admin.fetchTopicOffsets(topic)
  console.log(JSON.stringify({ reports, offsets }))
  await producer.disconnect()
  await admin.disconnect()
})().catch((e) => {
  console.error('kafkajs failed:', e)
  process.exit(1)
})
