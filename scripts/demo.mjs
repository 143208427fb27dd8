// `npm run demo`: a whole agent turn against an embedded local S3 server:
// seed a workspace on S3, pull it (with progress), edit files, push only
// the changes, and show what S3 holds afterwards.

import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { buildAddon, ensureNodeModules, ROOT } from './setup.mjs'
import { ensureWeed, startS3Server } from './s3-server.mjs'

ensureNodeModules()
ensureWeed()
buildAddon()

const server = await startS3Server()
Object.assign(process.env, server.env)
const { S3Client, CreateBucketCommand, PutObjectCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3')
const { S3WorkspaceSync } = await import(path.join(ROOT, 'index.mjs'))

const bar = (p) => {
  const width = 30
  const filled = Math.round((p.percentage / 100) * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(p.percentage).padStart(3)}% ${p.current}/${p.total}`
}

try {
  const s3 = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true })
  const bucket = 'agent-workspaces'
  const prefix = 'users/user123/workspace/'
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  const seedFiles = {
    'README.md': '# Research notes\n',
    'src/index.ts': 'export const answer = 42\n',
    'data/report.csv': 'quarter,revenue\nQ1,100\nQ2,120\n',
  }
  for (let i = 0; i < 150; i++) seedFiles[`notes/day-${String(i).padStart(3, '0')}.md`] = `Day ${i}: ${'observation '.repeat(i % 40)}\n`
  await Promise.all(Object.entries(seedFiles).map(([rel, Body]) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: prefix + rel, Body }))))
  console.log(`\nSeeded s3://${bucket}/${prefix} with ${Object.keys(seedFiles).length} files.`)

  const workspaceDir = mkdtempSync(path.join(os.tmpdir(), 'agent-ws-'))
  const logger = { debug() {}, info: (m) => console.log(`  log: ${m}`), warn: (m) => console.warn(`  warn: ${m}`), error: (m) => console.error(`  error: ${m}`) }
  const sync = new S3WorkspaceSync({ bucket, prefix, workspaceDir, endpoint: server.endpoint, logger })
  sync.on('progress', (p) => console.log(`  ${p.phase.padEnd(8)} ${bar(p)}`))

  console.log(`\n1. Agent starts: startBackgroundPull() into ${workspaceDir}`)
  sync.startBackgroundPull()
  console.log('   (agent initialises while files arrive...)')
  await sync.waitForPull()
  console.log(`   isPullComplete() = ${sync.isPullComplete()}`)
  console.log(`   src/index.ts: ${readFileSync(path.join(workspaceDir, 'src/index.ts'), 'utf8').trim()}`)

  console.log('\n2. Agent works on local disk: edits one file, adds 26, deletes one, writes a log file.')
  writeFileSync(path.join(workspaceDir, 'data/report.csv'), 'quarter,revenue\nQ1,100\nQ2,120\nQ3,150\n')
  writeFileSync(path.join(workspaceDir, 'src/agent.ts'), 'export function run() {}\n')
  for (let i = 0; i < 25; i++) writeFileSync(path.join(workspaceDir, `notes/extra-${i}.md`), `extra ${i}\n`)
  rmSync(path.join(workspaceDir, 'README.md'))
  writeFileSync(path.join(workspaceDir, 'debug.log'), 'ignored by the built-in rules\n')

  console.log('\n3. push(): only the changes go to S3.')
  const pushed = await sync.push()
  console.log(`   ${JSON.stringify(pushed)}`)

  console.log('\n4. A new container: a fresh instance pulls into the same directory.')
  const warm = await new S3WorkspaceSync({ bucket, prefix, workspaceDir, endpoint: server.endpoint, logger: { ...logger, info() {} } }).pull()
  console.log(`   ${JSON.stringify(warm)}  (unchanged files are not downloaded again)`)

  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))
  const keys = (listed.Contents ?? []).map((o) => o.Key.slice(prefix.length))
  console.log(
    `\nS3 now holds ${keys.length} files; README.md gone: ${!keys.includes('README.md')}, src/agent.ts present: ${keys.includes('src/agent.ts')}, debug.log absent: ${!keys.includes('debug.log')}`,
  )
  rmSync(workspaceDir, { recursive: true, force: true })
  s3.destroy()
} finally {
  await server.stop()
}
