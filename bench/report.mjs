// The benchmark's report: medians per scenario and implementation, the
// targets of issues 4 and 13, and notes, as markdown; written beside the raw
// samples as JSON (bench/results/latest.md and latest.json by default).

import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ROOT } from '../scripts/setup.mjs'
import { PEERS_LIST as PEERS } from './peers.mjs'
import { formatCounts } from './proxy.mjs'

const MiB = 1024 * 1024

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
export const fmtMs = (ms) => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`)
export const fmtMiB = (kb) => `${Math.round(kb / 1024)} MiB`
const fmtX = (x) => (x >= 100 ? `${Math.round(x)}×` : x >= 10 ? `${x.toFixed(1)}×` : `${x.toFixed(2)}×`)

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim()
  } catch {
    return ''
  }
}

function stats(samples) {
  const ok = samples.filter((s) => !s.error)
  if (ok.length === 0) return null
  const pick = (f) => ok.map(f).filter((x) => Number.isFinite(x))
  return {
    n: ok.length,
    failed: samples.length - ok.length,
    ms: median(pick((s) => s.ms)),
    wholeMs: ok[0].wholeMs === undefined ? null : median(pick((s) => s.wholeMs)),
    min: Math.min(...pick((s) => s.ms)),
    max: Math.max(...pick((s) => s.ms)),
    rssKB: median(pick((s) => s.maxRssKB)),
    lagMax: ok[0].lagMaxMs === undefined ? null : median(pick((s) => s.lagMaxMs)),
    lagP99: ok[0].lagP99Ms === undefined ? null : median(pick((s) => s.lagP99Ms)),
    serverCpu: median(pick((s) => s.serverCpuMs)),
    cpu: median(pick((s) => s.cpuMs)),
    otherCpu: Math.max(...pick((s) => s.otherCpuMs / s.wallMs)),
    problems: ok.map((s) => s.problem).filter(Boolean),
  }
}

export function renderReport({ opts, results, stopped = [], native, baseline, ws, many, del, bigSize, tmpBase, elapsedMs, waitedMs, peers }) {
  const cpu = os.cpus()[0]?.model ?? 'unknown'
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no']) ? ' (uncommitted changes)' : ''
  const lines = []
  lines.push(`# Benchmark results${opts.quick ? ' (quick)' : ''}`, '')
  lines.push(`- Date: ${new Date().toISOString()}; total run ${(elapsedMs / 60000).toFixed(1)} min`)
  lines.push(`- Machine: ${os.availableParallelism?.() ?? os.cpus().length} CPUs (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}`)
  lines.push(
    `- Load average at the end (1/5/15 min): ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' / ')}; waited ${Math.round(waitedMs / 1000)} s in all for other processes to go quiet before timed runs`,
  )
  lines.push(
    `- Node ${process.version}; SeaweedFS 4.48 (\`weed mini\`, 30 GB volumes), data and workspaces on ${tmpBase}, loopback${opts.latency ? `; timed runs through a proxy adding ${opts.latency} ms to each request and each answer (${2 * opts.latency} ms per round trip)` : ''}`,
  )
  lines.push(
    `- Code: ${sh('git', ['rev-parse', '--short', 'HEAD'])}${dirty}; release addon built ${native.builtAt} from ${native.source}${native.stale ? ' (Rust sources in the working tree have changed since)' : ''}${baseline ? `; baseline: the package at ${baseline.commit}, built from that commit` : ''}`,
  )
  const ran = (...names) => results.some((r) => names.includes(r.name))
  const nMany = many.files.toLocaleString('en')
  const extra = [
    ran('cold-pull-many', 'warm-pull-many', 'noop-push-many') ? `many files: ${nMany} of 1 KiB in ${many.dirs} directories` : '',
    ran('delete-push') ? `deletions: ${del.files.length.toLocaleString('en')} files of 1 KiB, ${del.remove.length.toLocaleString('en')} of them deleted` : '',
  ].filter(Boolean)
  lines.push(
    `- Workload: ${ws.files} files, ${(ws.bytes / 1e6).toFixed(1)} MB, ${ws.dirs} directories; big file ${bigSize / MiB} MiB${extra.map((x) => `; ${x}`).join('')}; ${opts.reps} timed reps per implementation, order rotated each rep; medians`,
  )
  const fewer = results.filter((r) => r.reps < opts.reps)
  if (fewer.length) lines.push(`- Fewer timed reps (long runs): ${fewer.map((r) => `${r.name} ${r.reps}`).join(', ')} per implementation, not ${opts.reps}`)
  for (const { name, why } of stopped) lines.push(`- **Stopped, no result: ${name}** (${why})`)
  lines.push('')
  lines.push('| scenario | impl | median time (min–max) | client CPU | server CPU | peak RSS | requests | loop lag max / p99 | ratio |')
  lines.push('|---|---|---|---|---|---|---|---|---|')
  const targets = []
  for (const r of results) {
    const st = Object.fromEntries(Object.entries(r.impls).map(([k, v]) => [k, stats(v.samples)]))
    const ours = st.ours
    const ref = st.reference
    for (const [impl, v] of Object.entries(r.impls)) {
      const s = st[impl]
      if (!s) {
        lines.push(`| ${r.title} | ${impl} | FAILED: ${v.samples[0]?.error ?? ''} | | | | | | |`)
        continue
      }
      let ratio = ''
      if (impl === 'ours' && ref) ratio = `${fmtX(ref.ms / s.ms)} faster than reference`
      if (impl === 'baseline' && ours) ratio = `ours ${fmtX(s.ms / ours.ms)} the speed of ${baseline.commit}`
      if (impl === 'floor' && ours) ratio = `ours = ${fmtX(ours.ms / s.ms)} floor`
      if (impl === 'floor-disk' && ours) ratio = `ours = ${fmtX(ours.ms / s.ms)} floor to disk`
      if (impl === 'single-stream' && ours) ratio = `ours = ${fmtX(ours.ms / s.ms)} single stream`
      if (impl === 'raw-multipart' && ours) ratio = `ours = ${fmtX(ours.ms / s.ms)} raw multipart`
      if (PEERS.includes(impl) && ours) ratio = `ours ${fmtX(s.ms / ours.ms)} faster than ${impl}`
      const lag = s.lagMax === null ? '–' : `${s.lagMax.toFixed(0)} / ${s.lagP99.toFixed(0)} ms`
      const flags = [
        s.failed ? `${s.failed} failed` : '',
        s.otherCpu > 0.2 ? `other processes used up to ${s.otherCpu.toFixed(1)} cores` : '',
        ...new Set(s.problems.map((p) => `check: ${p}`)),
      ]
        .filter(Boolean)
        .join('; ')
      lines.push(
        `| ${r.title} | ${impl} | ${fmtMs(s.ms)} (${fmtMs(s.min)}–${fmtMs(s.max)})${flags ? ` ⚠ ${flags}` : ''} | ${fmtMs(s.cpu)} | ${fmtMs(s.serverCpu)} | ${fmtMiB(s.rssKB)} | ${formatCounts(v.counts)} | ${lag} | ${ratio} |`,
      )
    }
    const t = (what, target, measured, pass) => targets.push({ what, target, measured, pass })
    const speedup = ours && ref ? ref.ms / ours.ms : null
    const n = (impl, k) => r.impls[impl]?.counts?.[k] ?? 0
    const vsFloorAndRclone = (what) => {
      if (st.floor) t(`${what} vs floor probe`, '≤ 1.1×', fmtX(ours.ms / st.floor.ms), ours.ms / st.floor.ms <= 1.1)
      const disk = st['floor-disk']
      if (disk) t(`${what} vs like-for-like floor (to disk, verified)`, '≤ 1.1×', fmtX(ours.ms / disk.ms), ours.ms / disk.ms <= 1.1)
      if (st.rclone) t(`${what} vs rclone`, '≥ 1.1× faster', fmtX(st.rclone.ms / ours.ms), st.rclone.ms / ours.ms >= 1.1)
    }
    if (r.name === 'cold-pull' && ours) {
      if (speedup) t('cold pull vs reference', '≥ 4×', fmtX(speedup), speedup >= 4)
      vsFloorAndRclone('cold pull')
      t('event-loop lag during cold pull (max)', '≤ 20 ms', `${ours.lagMax.toFixed(1)} ms (p99 ${ours.lagP99.toFixed(1)} ms)`, ours.lagMax <= 20)
    }
    if (r.name === 'cold-pull-many' && ours) {
      vsFloorAndRclone(`cold pull ${nMany} files`)
      t(`peak RSS ${nMany}-file cold pull (whole Node process)`, '≤ 150 MiB', fmtMiB(ours.rssKB), ours.rssKB <= 150 * 1024)
    }
    if (r.name === 'delete-push' && r.impls.ours?.counts) {
      const reqs = n('ours', 'DELETE') + n('ours', 'DEL-BATCH')
      t(`${del.remove.length.toLocaleString('en')} deletions: requests`, '≤ 5', String(reqs), reqs <= 5)
    }
    if (r.name === 'warm-pull' && ours) {
      if (r.impls.ours.counts) t('warm pull GETs', '0', String(n('ours', 'GET')), n('ours', 'GET') === 0)
      if (speedup) t('warm pull vs reference', '≥ 30×', fmtX(speedup), speedup >= 30)
    }
    if (r.name === 'noop-push' && speedup) t('no-op push vs reference', '≥ 10×', fmtX(speedup), speedup >= 10)
    if (r.name === 'edit-push' && speedup) t('edit push vs reference', '≥ 5×', fmtX(speedup), speedup >= 5)
    if (r.name === 'push-big' && ours) {
      if (speedup) t(`${bigSize / MiB} MiB push vs reference`, '≥ 3×', fmtX(speedup), speedup >= 3)
      t(`${bigSize / MiB} MiB push peak RSS (whole Node process)`, '≤ 150 MiB', fmtMiB(ours.rssKB), ours.rssKB <= 150 * 1024)
      const raw = st['raw-multipart']
      if (raw) t(`${bigSize / MiB} MiB push vs raw multipart (no hashing)`, '≤ 1.1×', fmtX(ours.ms / raw.ms), ours.ms / raw.ms <= 1.1)
    }
    const instant = /^(priority|ensure|first)-(ws|many)$/.exec(r.name)
    if (instant && ours) {
      const base = st.baseline
      const vs = base ? ` (before: ${fmtMs(base.ms)})` : ''
      const whole = `whole pull ${fmtMs(ours.wholeMs)}${base ? `, before ${fmtMs(base.wholeMs)}: ${fmtX(ours.wholeMs / base.wholeMs)}` : ''}`
      const latency = opts.latency ? `, ${opts.latency} ms latency` : ', loopback'
      const size = instant[2] === 'many' ? nMany : ws.files.toLocaleString('en')
      const goal = { priority: 300, ensure: 200 }[instant[1]]
      if (goal && instant[2] === 'many' && opts.latency >= 20) {
        t(`${instant[1] === 'priority' ? 'priorityDone' : 'ensure()'} at ${size} files${latency}`, `≤ ${goal} ms`, `${fmtMs(ours.ms)}${vs}; ${whole}`, ours.ms <= goal)
      } else {
        t(
          `${{ priority: 'priorityDone', ensure: 'ensure()', first: 'first file' }[instant[1]]} at ${size} files${latency}`,
          'sooner than before',
          `${fmtMs(ours.ms)}${vs}; ${whole}`,
          !base || ours.ms < base.ms,
        )
      }
    }
    const bigPull = { 'pull-big': 'of our object', 'pull-big-single': 'of a single-PUT object, no checksum', 'pull-big-crc': 'of a single-PUT object with a CRC32' }[r.name]
    if (bigPull && ours) {
      const single = st['single-stream']
      if (single) t(`${bigSize / MiB} MiB pull ${bigPull} vs single GET to disk (every byte verified)`, '≤ 1.2×', fmtX(ours.ms / single.ms), ours.ms / single.ms <= 1.2)
      t(`${bigSize / MiB} MiB pull ${bigPull}: peak RSS (whole Node process)`, '≤ 150 MiB', fmtMiB(ours.rssKB), ours.rssKB <= 150 * 1024)
    }
  }
  lines.push('')
  lines.push('Targets (issues 4, 13 and 25):', '')
  lines.push('| target | wanted | measured | |')
  lines.push('|---|---|---|---|')
  for (const x of targets) lines.push(`| ${x.what} | ${x.target} | ${x.measured} | ${x.pass ? '✅' : '❌'} |`)
  lines.push('')
  lines.push('Notes:')
  lines.push(
    "- Time: the measured operation only (instance built and setup pull/edits done before the clock starts), in a fresh child process each run. floor / single-stream: the probe's own clock (client setup + listing + GETs), no process start.",
  )
  lines.push(
    '- Peak RSS: VmHWM of the whole child at the end (`process.resourceUsage().maxRSS` carries the peak of the bench process across the exec). For the push scenarios after a setup pull it includes that pull.',
  )
  lines.push('- Requests: one separate untimed pass through a counting proxy; only the measured operation is counted (setup pulls excluded).')
  lines.push(
    '- Client CPU: user + system time of the child process (all threads) during the operation. Server CPU: CPU time SeaweedFS used during the operation; it shares the 2 cores, so client + server CPU close to 2 × time means the machine was saturated.',
  )
  lines.push('- Loop lag: `perf_hooks.monitorEventLoopDelay` (1 ms resolution) in the child during the operation.')
  lines.push('- Other load: CPU used by processes outside the benchmark during each run (/proc/stat), flagged ⚠ when above 0.2 cores.')
  lines.push("- ours (and baseline): `downloadConcurrency` and `uploadConcurrency` 64, as the floor probe and the peers get; the package defaults are upstream's 50 and 10.")
  lines.push(
    '- reference: bench/reference.mjs, the upstream algorithm with @aws-sdk/client-s3 defaults (50 GETs / 10 PUTs in flight). floor: list + GET all at 64 in flight into memory, no disk, no hashing. floor-disk: the same, each body to a temp file beside its path, MD5-checked against its ETag, renamed into place (what the engine does to commit a download, and nothing else). single-stream: one GET streamed to disk, no hashing. raw-multipart: the file uploaded in 8 MiB parts, 6 in flight, as the engine does, with no hashing and no Content-MD5.',
  )
  if (ran('cold-pull-many', 'warm-pull-many', 'noop-push-many')) {
    lines.push(
      `- ${nMany}-file scenarios: the warm pull and the no-op push run in the workspace the same implementation pulled in cold-pull-many (or, when that did not run, in one untimed pull of its own), every run in the same directory.`,
    )
  }
  if (ran('delete-push')) {
    lines.push(
      `- delete-push: ours (and baseline) are built with \`maxDeletePercent: 100\`: deleting ${del.remove.length.toLocaleString('en')} of ${del.files.length.toLocaleString('en')} files is over the mass-deletion guard's default 50%, which would delete nothing (MASS_DELETE). After each run this package's push from the template puts the deleted objects back. The files live under scratch/, not build/, which the package ignores by default.`,
    )
  }
  lines.push(
    `- rclone: \`rclone sync --checksum --fast-list --transfers=64 --checkers=64\`; awscli: \`aws s3 sync --delete\` with max_concurrent_requests = 64 (Debian packages). Each is its own process: the time includes its start-up; RSS and CPU are its own (GNU time). Peers not installed: ${peers.missing.join('; ') || 'none'}.`,
  )
  return lines.join('\n') + '\n'
}

/**
 * Prints the report and writes it to `out` (default bench/results/latest.md,
 * quick.md for --quick), with the raw samples beside it (`.json`).
 * `run`: what renderReport takes.
 */
export function writeReport(run) {
  const { opts, native, ws, many, bigSize, results } = run
  const report = renderReport(run)
  console.log(`\n${report}`)
  const out = opts.out ?? path.join(ROOT, 'bench', 'results', opts.quick ? 'quick.md' : 'latest.md')
  mkdirSync(path.dirname(out), { recursive: true })
  writeFileSync(out, report)
  writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify({ opts, native, workload: ws, many, bigSize, results }, null, 1))
  console.log(`Written to ${path.relative(ROOT, out)} (raw samples: ${path.relative(ROOT, out.replace(/\.md$/, '.json'))})`)
}
