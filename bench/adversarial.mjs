// The adversarial fleet runs of the "durability at the edges" issue, with
// counts: agents that edit shared files in tight pull-edit-push loops (no
// pause), on SeaweedFS and on moto, and one agent regenerating its output
// under `watch()` behind a proxy adding 0–250 ms to every request.
//
//   node bench/adversarial.mjs                 every run (about 10 minutes)
//   node bench/adversarial.mjs --quick         fewer rounds
//   node bench/adversarial.mjs --only watch    fleet-seaweed | fleet-moto | watch
//
// Every line an agent appended and pushed with success must end on S3 (at
// its name or in a conflict copy); every file the agent regenerated must end
// on S3 at its name with its last content. The script prints a table, writes
// it with the raw counts to bench/results/adversarial.{md,json}, and exits 1
// if anything was lost.

import http from 'node:http'
import { appendFileSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { S3Client, CreateBucketCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { startS3Server, startMoto, CREDENTIALS } from '../scripts/s3-server.mjs'
import { buildAddon } from '../scripts/setup.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({
  options: { quick: { type: 'boolean' }, only: { type: 'string' }, 'no-build': { type: 'boolean' } },
})
const only = args.only?.split(',')
const wanted = (name) => !only || only.includes(name)

if (!args['no-build']) buildAddon()
const { S3WorkspaceSync } = await import('../index.js')
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const tmp = (name) => mkdtempSync(path.join(os.tmpdir(), `s3ws-adv-${name}-`))
const FILES = ['notes.md', 'log.txt', 'plan.md']

async function everything(client, bucket) {
  const keys = []
  let ContinuationToken
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'p/', ContinuationToken }))
    for (const o of page.Contents ?? []) keys.push(o.Key)
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined
  } while (ContinuationToken)
  const bodies = {}
  for (const key of keys) {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    bodies[key] = Buffer.from(await out.Body.transformToByteArray()).toString()
  }
  return bodies
}

/** `agents` agents, `rounds` rounds each: pull, append a line to the round's shared file, push, no pause. */
async function fleet({ label, endpoint, client, agents, rounds }) {
  const bucket = `adv-${process.pid}-${Date.now().toString(36)}-${agents}`
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
  const seedDir = tmp('seed')
  for (const f of FILES) writeFileSync(path.join(seedDir, f), 'start\n')
  await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: seedDir, endpoint, logger: quiet }).push()
  const fleet = Array.from({ length: agents }, (_, i) => ({ name: `agent${i}`, dir: tmp(`a${i}`), pushed: [], ok: 0, conflicted: 0, failed: 0 }))
  const started = Date.now()
  await Promise.all(
    fleet.map(async (agent) => {
      const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: agent.dir, endpoint, logger: quiet })
      let pending = []
      for (let i = 0; i < rounds; i++) {
        await sync.pull()
        // Every agent edits the same file in the same round.
        const file = FILES[i % FILES.length]
        const line = `${agent.name}-round${i}`
        appendFileSync(path.join(agent.dir, file), `${line}\n`)
        pending.push(line)
        const result = await sync.push()
        if (result.success) {
          agent.ok++
          agent.pushed.push(...pending)
          pending = []
        } else if (result.conflicts?.length) agent.conflicted++
        else agent.failed++
      }
      await sync.close()
    }),
  )
  const seconds = (Date.now() - started) / 1000
  const bodies = await everything(client, bucket)
  const all = new Set(Object.values(bodies).flatMap((b) => b.split('\n')))
  const pushed = fleet.flatMap((a) => a.pushed)
  const lost = pushed.filter((line) => !all.has(line))
  const copies = Object.keys(bodies).filter((k) => k.includes('.conflict-')).length
  for (const a of fleet) rmSync(a.dir, { recursive: true, force: true })
  rmSync(seedDir, { recursive: true, force: true })
  return {
    run: label,
    agents,
    rounds,
    pushes: agents * rounds,
    succeeded: fleet.reduce((n, a) => n + a.ok, 0),
    perAgent: fleet.map((a) => a.ok).join('/'),
    conflicted: fleet.reduce((n, a) => n + a.conflicted, 0),
    failed: fleet.reduce((n, a) => n + a.failed, 0),
    pushedLines: pushed.length,
    lostLines: lost.length,
    copies,
    seconds,
  }
}

/** A proxy that holds every request and every answer 0–`maxMs` ms at random. */
async function latencyProxy(target, maxMs) {
  const upstream = new URL(target)
  const agent = new http.Agent({ keepAlive: true })
  const jitter = () => sleep(Math.random() * maxMs)
  const server = http.createServer(async (req, res) => {
    await jitter()
    const fwd = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent }, async (up) => {
      await jitter()
      res.writeHead(up.statusCode, up.headers)
      up.pipe(res)
    })
    fwd.on('error', () => res.destroy())
    req.pipe(fwd)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return { endpoint: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) }
}

/** The README's watch() pattern: an agent regenerating `out/` (rm -rf, then 8 files) while watch pushes. */
async function regeneration({ endpoint, client, generations, maxLatency }) {
  const bucket = `adv-watch-${process.pid}-${Date.now().toString(36)}`
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
  const proxy = await latencyProxy(endpoint, maxLatency)
  const dir = tmp('watch')
  // The rest of the workspace: the regenerated files are a few of many, so
  // a push that deletes them is no mass deletion.
  mkdirSync(path.join(dir, 'src'))
  for (let i = 0; i < 40; i++) writeFileSync(path.join(dir, 'src', `module${i}.txt`), `module ${i}\n`)
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet })
  const watcher = await sync.watch({ debounceMs: 100 })
  const started = Date.now()
  let last = 0
  for (let g = 1; g <= generations; g++) {
    // The agent also logs what it does: a push uploads that before it
    // deletes anything, which is when the regeneration overtakes it.
    writeFileSync(path.join(dir, 'status.txt'), `generation ${g} starting\n`)
    rmSync(path.join(dir, 'out'), { recursive: true, force: true })
    await sleep(Math.random() * 300)
    mkdirSync(path.join(dir, 'out'), { recursive: true })
    for (let i = 0; i < 8; i++) writeFileSync(path.join(dir, 'out', `report${i}.txt`), `generation ${g}\n`)
    last = g
    await sleep(Math.random() * 300)
  }
  const final = await watcher.stop()
  await sync.close()
  await proxy.close()
  const bodies = await everything(client, bucket)
  let stale = 0
  for (let i = 0; i < 8; i++) if (bodies[`p/out/report${i}.txt`] !== `generation ${last}\n`) stale++
  const copies = Object.keys(bodies).filter((k) => k.includes('.conflict-')).length
  rmSync(dir, { recursive: true, force: true })
  return { run: `watch, 0–${maxLatency} ms latency`, generations, files: 8, stale, copies, finalPushOk: final.success, seconds: (Date.now() - started) / 1000 }
}

const rows = []
const rounds2 = args.quick ? 15 : 50
const rounds4 = args.quick ? 12 : 40
if (wanted('fleet-seaweed') || wanted('watch')) {
  const server = await startS3Server({ quiet: true })
  process.env.AWS_ACCESS_KEY_ID = CREDENTIALS.accessKeyId
  process.env.AWS_SECRET_ACCESS_KEY = CREDENTIALS.secretAccessKey
  process.env.AWS_REGION = 'us-east-1'
  const client = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS })
  try {
    if (wanted('fleet-seaweed')) {
      rows.push(await fleet({ label: 'SeaweedFS', endpoint: server.endpoint, client, agents: 2, rounds: rounds2 }))
      rows.push(await fleet({ label: 'SeaweedFS', endpoint: server.endpoint, client, agents: 4, rounds: rounds4 }))
    }
    if (wanted('watch')) {
      for (const maxLatency of [100, 250]) rows.push(await regeneration({ endpoint: server.endpoint, client, generations: args.quick ? 5 : 12, maxLatency }))
    }
  } finally {
    client.destroy()
    await server.stop()
  }
}
if (wanted('fleet-moto')) {
  const moto = await startMoto()
  process.env.AWS_ACCESS_KEY_ID ??= 'moto'
  process.env.AWS_SECRET_ACCESS_KEY ??= 'moto'
  const client = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' } })
  try {
    rows.push(await fleet({ label: 'moto 5.2.5', endpoint: moto.endpoint, client, agents: 2, rounds: rounds2 }))
    rows.push(await fleet({ label: 'moto 5.2.5', endpoint: moto.endpoint, client, agents: 4, rounds: rounds4 }))
  } finally {
    client.destroy()
    await moto.stop()
  }
}

const fleetRows = rows.filter((r) => r.agents)
const watchRows = rows.filter((r) => r.generations)
const lines = []
if (fleetRows.length) {
  lines.push('| server | agents × rounds | pushes through (per agent) | conflicts | other failures | pushed lines | lost | conflict copies | s |')
  lines.push('|---|---|---|---|---|---|---|---|---|')
  for (const r of fleetRows) {
    lines.push(
      `| ${r.run} | ${r.agents} × ${r.rounds} | ${r.succeeded} of ${r.pushes} (${r.perAgent}) | ${r.conflicted} | ${r.failed} | ${r.pushedLines} | ${r.lostLines} | ${r.copies} | ${r.seconds.toFixed(1)} |`,
    )
  }
}
if (watchRows.length) {
  lines.push('', '| run | generations × files | stale at their names | conflict copies | final push | s |', '|---|---|---|---|---|---|')
  for (const r of watchRows) lines.push(`| ${r.run} | ${r.generations} × ${r.files} | ${r.stale} | ${r.copies} | ${r.finalPushOk ? 'ok' : 'failed'} | ${r.seconds.toFixed(1)} |`)
}
const table = lines.join('\n')
console.log(table)
if (!args.quick && !only) {
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true })
  writeFileSync(path.join(ROOT, 'bench', 'results', 'adversarial.md'), `# Adversarial fleet runs (\`node bench/adversarial.mjs\`)\n\n${table}\n`)
  writeFileSync(path.join(ROOT, 'bench', 'results', 'adversarial.json'), `${JSON.stringify(rows, null, 2)}\n`)
}
const lost = fleetRows.some((r) => r.lostLines > 0) || watchRows.some((r) => r.stale > 0)
process.exit(lost ? 1 : 0)
