// Reads COUNT records of TOPIC as a member of GROUP with a KafkaJS consumer
// (JoinGroup/SyncGroup/Heartbeat/OffsetCommit through sluice), then prints
// the group's committed offsets as KafkaJS's admin reads them, as JSON.
// Usage: node group_consume.js BOOTSTRAP TOPIC GROUP COUNT
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, groupId, count] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'sluice-e2e', brokers: [bootstrap], logLevel: logLevel.ERROR })

;(async () => {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${seen.length} records in 45 s`)), 45000)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen.push([partition, Number(message.offset), message.value.toString()])
        if (seen.length >= Number(count)) {
          clearTimeout(timer)
          resolve()
        }
      },
    })
  })
  await consumer.commitOffsets([]) // flush auto-commit state
  await consumer.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
  const groups = await admin.listGroups()
  await admin.disconnect()
  console.log(JSON.stringify({ seen, committed, groups }))
})().catch((e) => {
  console.error('kafkajs failed:', e)
  process.exit(1)
})
