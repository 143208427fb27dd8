// The same script against this package and against upstream, side by side:
// what each does in the situations where they differ on purpose (the
// README's "Where this differs from upstream" table).
//
//   node bench/compare-upstream.mjs                      upstream = bench/reference.mjs
//   UPSTREAM=/path/to/node_modules/@moca/s3-workspace-sync node bench/compare-upstream.mjs
//
// The upstream package is not on the registry this machine reaches, so by
// default its algorithm stands in: `ReferenceSync` in bench/reference.mjs,
// written from the upstream package's recorded behaviour (the README's
// "Where this differs from upstream" lists what changed on purpose). With
// UPSTREAM set, the real package runs instead.
// Prints a table and writes it to bench/results/upstream-differences.md.

import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { startS3Server, CREDENTIALS } from '../scripts/s3-server.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const server = await startS3Server({ quiet: true })
Object.assign(process.env, { AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' })
const admin = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS })
const quiet = { debug() {}, info() {}, warn() {}, error() {} }

const ours = (await import('../index.js')).S3WorkspaceSync
const upstreamName = process.env.UPSTREAM ? `upstream (${process.env.UPSTREAM})` : 'upstream (its algorithm: bench/reference.mjs)'
const Upstream = process.env.UPSTREAM ? (await import(process.env.UPSTREAM)).S3WorkspaceSync : (await import('./reference.mjs')).ReferenceSync

let n = 0
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 's3ws-compare-'))
const make = (Impl, bucket, dir) => new Impl({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: server.endpoint, forcePathStyle: true, logger: quiet })
const put = (bucket, rel, body) => admin.send(new PutObjectCommand({ Bucket: bucket, Key: `p/${rel}`, Body: body }))
const get = async (bucket, rel) => {
  try {
    return Buffer.from(await (await admin.send(new GetObjectCommand({ Bucket: bucket, Key: `p/${rel}` }))).Body.transformToByteArray()).toString()
  } catch {
    return null
  }
}
const keys = async (bucket) => ((await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'p/' }))).Contents ?? []).map((o) => o.Key.slice(2)).sort()
const read = (dir, rel) => (existsSync(path.join(dir, rel)) ? readFileSync(path.join(dir, rel), 'utf8') : null)
const settle = () => new Promise((r) => setTimeout(r, 50))
async function fresh(files = {}) {
  const bucket = `cmp-${process.pid}-${n++}`
  await admin.send(new CreateBucketCommand({ Bucket: bucket }))
  for (const [rel, body] of Object.entries(files)) await put(bucket, rel, body)
  return bucket
}

/** Each scenario runs against one implementation and says what happened. */
const SCENARIOS = {
  'A pull into a directory holding a file S3 does not have': async (Impl) => {
    const bucket = await fresh({ 'a.txt': 'a' })
    const dir = tmp()
    writeFileSync(path.join(dir, 'unpushed.txt'), 'agent work')
    await settle()
    await make(Impl, bucket, dir).pull()
    return read(dir, 'unpushed.txt') === null ? 'the local file is deleted' : 'the local file is kept (pushed next)'
  },
  'Two agents edit one file; both push': async (Impl) => {
    const bucket = await fresh({ 'shared.md': 'base' })
    const [a, b] = [tmp(), tmp()]
    const [sa, sb] = [make(Impl, bucket, a), make(Impl, bucket, b)]
    await sa.pull()
    await sb.pull()
    await settle()
    writeFileSync(path.join(a, 'shared.md'), 'edit by A')
    writeFileSync(path.join(b, 'shared.md'), 'edit by B')
    await sa.push()
    const second = await sb.push()
    const now = await get(bucket, 'shared.md')
    return now === 'edit by B' ? `B silently overwrites A (success: ${second.success})` : `B's push is a conflict; A's edit stays (success: ${second.success})`
  },
  'The workspace is emptied (an unmounted volume), then pushed': async (Impl) => {
    const files = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}.txt`, `${i}`]))
    const bucket = await fresh(files)
    const dir = tmp()
    const s = make(Impl, bucket, dir)
    await s.pull()
    for (const f of Object.keys(files)) rmSync(path.join(dir, f))
    await s.push()
    const left = (await keys(bucket)).length
    return left === 0 ? 'every object is deleted on S3' : `nothing is deleted (${left} objects stay; MASS_DELETE)`
  },
  'A new process pushes a workspace pulled earlier, unchanged': async (Impl) => {
    const bucket = await fresh({ 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c' })
    const dir = tmp()
    await make(Impl, bucket, dir).pull()
    await settle()
    const r = await make(Impl, bucket, dir).push()
    return `${r.uploadedFiles} of 3 files uploaded again`
  },
  'A pull when nothing changed on S3': async (Impl) => {
    const bucket = await fresh({ 'a.txt': 'a', 'b.txt': 'b' })
    const dir = tmp()
    const s = make(Impl, bucket, dir)
    await s.pull()
    const r = await s.pull()
    return `downloadedFiles ${r.downloadedFiles}, files moved ${r.transferredFiles ?? r.downloadedFiles}`
  },
  'A file changed here and on S3, then pulled': async (Impl) => {
    const bucket = await fresh({ 'notes.md': 'v1' })
    const dir = tmp()
    const s = make(Impl, bucket, dir)
    await s.pull()
    await settle()
    writeFileSync(path.join(dir, 'notes.md'), 'local edit')
    await put(bucket, 'notes.md', 's3 edit')
    await settle()
    await s.pull()
    const copies = existsSync(dir) ? (await import('node:fs')).readdirSync(dir).filter((f) => f.includes('.conflict-')) : []
    return copies.length ? `S3's version at the name, the local edit kept as a conflict copy` : `S3's version replaces the local edit (${read(dir, 'notes.md')})`
  },
}

const rows = []
try {
  for (const [name, scenario] of Object.entries(SCENARIOS)) {
    const them = await scenario(Upstream).catch((e) => `threw: ${e.message}`)
    const us = await scenario(ours).catch((e) => `threw: ${e.message}`)
    rows.push([name, them, us])
  }
} finally {
  admin.destroy()
  await server.stop()
}
const table = [`| Situation | ${upstreamName} | this package |`, '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
console.log(table)
mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(
  path.join(ROOT, 'bench', 'results', 'upstream-differences.md'),
  `# The same script against upstream and this package (\`node bench/compare-upstream.mjs\`)\n\n${table}\n`,
)
process.exit(0)
