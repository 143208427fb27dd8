// Peer tools run by the benchmark side by side with this package: rclone and
// `aws s3 sync` (Debian packages: `apt-get install rclone awscli`). Each run
// is the tool's own process, timed with its start-up, wrapped in GNU time for
// its peak RSS and CPU. A peer that is not installed is skipped with a note.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** The peers the benchmark knows. */
export const PEERS_LIST = ['rclone', 'awscli']

const TIME = '/usr/bin/time'
/** Transfers in flight, as this package's defaults allow (50 down, 10 up). */
const IN_FLIGHT = 64

function found(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0
}

/** `aws` from Debian's awscli first (a pip one may shadow it on PATH). */
function awsCli() {
  return existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws'
}

/** Which peers can run here, and why the others cannot. */
export function availablePeers() {
  const out = { available: [], missing: [] }
  if (!existsSync(TIME)) {
    out.missing.push('rclone and awscli (GNU time, /usr/bin/time, is needed to measure them)')
    return out
  }
  for (const [name, cmd] of [
    ['rclone', 'rclone'],
    ['awscli', awsCli()],
  ]) {
    if (found(cmd)) out.available.push(name)
    else out.missing.push(`${name} (not installed: apt-get install ${name === 'rclone' ? 'rclone' : 'awscli'})`)
  }
  return out
}

/** The command syncing S3 → dir (pull) or dir → S3 (push), with --delete semantics. */
function command(tool, op, { bucket, prefix, dir, endpoint }) {
  const remote = tool === 'rclone' ? `:s3:${bucket}/${prefix}` : `s3://${bucket}/${prefix}`
  const [from, to] = op === 'pull' ? [remote, dir] : [dir, remote]
  if (tool === 'rclone') {
    return [
      'rclone',
      [
        'sync',
        from,
        to,
        '--checksum',
        '--fast-list',
        `--transfers=${IN_FLIGHT}`,
        `--checkers=${IN_FLIGHT}`,
        '--s3-provider=Other',
        `--s3-endpoint=${endpoint}`,
        '--s3-force-path-style=true',
        '--s3-region=us-east-1',
        '--s3-env-auth=true',
      ],
    ]
  }
  return [awsCli(), ['s3', 'sync', from, to, '--delete', '--endpoint-url', endpoint, '--no-progress', '--only-show-errors']]
}

/** An AWS config with the concurrency of the other tools, in a temp dir. */
function awsConfig() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 's3ws-bench-aws-'))
  const file = path.join(dir, 'config')
  writeFileSync(file, `[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = ${IN_FLIGHT}\n  addressing_style = path\n`)
  return file
}

/** A peer with this package's method names: pull()/push() run the tool once. */
export class PeerSync {
  constructor(tool, options) {
    this.tool = tool
    this.options = options
    this.last = null
  }

  async pull() {
    return this.run('pull')
  }

  async push() {
    return this.run('push')
  }

  run(op) {
    mkdirSync(this.options.workspaceDir, { recursive: true })
    const [cmd, args] = command(this.tool, op, { ...this.options, dir: this.options.workspaceDir })
    const env = { ...process.env }
    delete env.AWS_CA_BUNDLE // rclone refuses an unreadable bundle; plain http here
    if (this.tool === 'awscli') env.AWS_CONFIG_FILE = awsConfig()
    return new Promise((resolve, reject) => {
      const child = spawn(TIME, ['-f', '__TIME__ %M %U %S', cmd, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      child.once('error', reject)
      child.once('exit', (code) => {
        const m = /__TIME__ (\d+) ([\d.]+) ([\d.]+)/.exec(stderr)
        this.last = m ? { maxRssKB: Number(m[1]), cpuMs: (Number(m[2]) + Number(m[3])) * 1000 } : null
        const errors =
          code === 0
            ? undefined
            : [
                stderr
                  .replace(/__TIME__.*$/m, '')
                  .trim()
                  .split('\n')
                  .slice(-3)
                  .join(' | '),
              ]
        resolve({ success: code === 0, errors })
      })
    })
  }
}
