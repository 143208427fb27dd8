// The benchmark's scenarios: what each sets up (untimed), what it times, which
// implementations run it and how a run is checked. bench/run.mjs runs them;
// the table in bench/README.md describes them.

import { cpSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { PutObjectCommand, DeleteObjectCommand } from '@aws-sdk/client-s3'
import { mapLimit } from './reference.mjs'
import { fileContent } from './workload.mjs'

const MiB = 1024 * 1024

/** Implementations run by the floor probe rather than a Node child. */
export const PROBES = ['floor', 'floor-disk', 'single-stream', 'raw-multipart']

const expectTree = (s) => s.after ?? s.fetched
/** A check: the workspace (or what the probe fetched) holds exactly `want`'s files and bytes. */
const treeIs = (want) => (s) => {
  const t = expectTree(s)
  return t.files === want.files && t.bytes === want.bytes ? null : `got ${t.files} files / ${t.bytes} B`
}
const pushedNothing = (s) => (s.result.uploadedFiles === 0 && s.result.deletedFiles === 0 ? null : `uploaded ${s.result.uploadedFiles}, deleted ${s.result.deletedFiles}`)

/**
 * The scenarios `opts.only` selects (all by default), each with its
 * implementations: `baseline` beside `ours` when there is one, and the peers
 * installed. Throws when `--only` matches none.
 *
 * `w`: the seeded workloads and what the scenarios use to restore them:
 * `files`, `ws` (summary), `many`, `del`, `edits`, `bigSize`, `tplBig`,
 * `tplDel`, `admin` and `bucket`, `seedByPush(prefix, dir)`, `longTimeout`.
 */
export function selectScenarios({ opts, baseline, peers }, w) {
  const { files, ws, many, del, edits, bigSize, tplBig, tplDel, admin, bucket, seedByPush, longTimeout, instant } = w
  const nMany = many.files.toLocaleString('en')
  // Long runs: one timed rep, and a time limit for the slowest peer.
  const longRuns = { reps: 1, timeoutMs: longTimeout }
  const scenarios = [
    {
      name: 'cold-pull',
      title: `cold pull (${ws.files} files, ${(ws.bytes / 1e6).toFixed(0)} MB, empty workspace)`,
      impls: ['reference', 'ours', 'floor', 'floor-disk'],
      op: 'pull',
      prefix: () => 'ws/',
      check: treeIs(ws),
    },
    {
      name: 'warm-pull',
      title: 'warm pull (fresh instance, workspace unchanged)',
      impls: ['reference', 'ours'],
      op: 'pull',
      prefix: () => 'ws/',
      // The workspace a previous process of the same implementation pulled
      // (with whatever state that implementation keeps there).
      prepare: (ctx) => ctx.pullFirst('ws/'),
      check: treeIs(ws),
    },
    {
      name: 'noop-push',
      title: 'no-op push (after a pull, nothing changed)',
      impls: ['reference', 'ours'],
      op: 'push',
      // A cold pull into an empty workspace by the same instance, as an
      // agent would start (a copied workspace would leave every file with a
      // just-now mtime, which a stat cache must distrust).
      setupPull: true,
      prefix: () => 'ws/',
      check: pushedNothing,
    },
    {
      name: 'edit-push',
      title: 'edit push (after a pull: 10 edited + 5 new + 3 deleted)',
      impls: ['reference', 'ours'],
      op: 'push',
      setupPull: true,
      edits,
      prefix: () => 'edit/',
      check: (s) =>
        s.result.uploadedFiles === 15 && s.result.deletedFiles === 3 && s.result.success ? null : `uploaded ${s.result.uploadedFiles}, deleted ${s.result.deletedFiles}`,
      // Put the prefix back as it was.
      after: async () => {
        await mapLimit([...edits.edit, ...edits.remove.map((p) => ({ path: p, size: files.find((f) => f.path === p).size }))], 8, (f) =>
          admin.send(new PutObjectCommand({ Bucket: bucket, Key: `edit/${f.path}`, Body: fileContent(f.path, f.size) })),
        )
        await mapLimit(edits.add, 8, (f) => admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `edit/${f.path}` })))
      },
    },
    {
      name: 'push-big',
      title: `${bigSize / MiB} MiB push (one new file, fresh instance)`,
      impls: ['reference', 'ours', 'raw-multipart'],
      op: 'push',
      prefix: (ctx) => `bigpush/${path.basename(ctx.dir)}/`,
      prepare: (ctx) => {
        mkdirSync(ctx.dir, { recursive: true })
        cpSync(tplBig, path.join(ctx.dir, 'big.bin'))
      },
      check: (s) => (!s.result || (s.result.uploadedFiles === 1 && s.result.success) ? null : `uploaded ${s.result.uploadedFiles}`),
      after: (ctx) => admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `bigpush/${path.basename(ctx.dir)}/big.bin` })).catch(() => {}),
    },
    {
      name: 'pull-big',
      title: `${bigSize / MiB} MiB pull (one object pushed by this package, empty workspace)`,
      impls: ['reference', 'ours', 'single-stream'],
      op: 'pull',
      prefix: () => 'big/',
      check: (s) => (expectTree(s).bytes === bigSize ? null : `got ${expectTree(s).bytes} B`),
    },
    {
      name: 'pull-big-single',
      title: `${bigSize / MiB} MiB pull of an object sent elsewhere in one PUT (verified by its whole MD5)`,
      impls: ['ours', 'single-stream'],
      op: 'pull',
      prefix: () => 'bigone/',
      check: (s) => (expectTree(s).bytes === bigSize ? null : `got ${expectTree(s).bytes} B`),
    },
    {
      name: 'pull-big-crc',
      title: `${bigSize / MiB} MiB pull of an object sent elsewhere in one PUT with a CRC32 (the AWS SDKs' default; verified by it)`,
      impls: ['ours', 'single-stream'],
      op: 'pull',
      prefix: () => 'bigcrc/',
      check: (s) => (expectTree(s).bytes === bigSize ? null : `got ${expectTree(s).bytes} B`),
    },
    // Many small files: per-file costs rather than bytes. `workspace`: the
    // cold pull keeps each implementation's last good workspace under
    // `many:<impl>`; the warm pull and the no-op push run in it (`reuse`),
    // every run, and leave it there.
    {
      name: 'cold-pull-many',
      title: `cold pull (${nMany} files of 1 KiB, empty workspace)`,
      impls: ['reference', 'ours', 'floor', 'floor-disk'],
      op: 'pull',
      prefix: () => 'many/',
      ...longRuns,
      workspace: { key: 'many' },
      check: treeIs(many),
    },
    {
      // No reference: it keeps no state, its warm pull is its cold pull.
      name: 'warm-pull-many',
      title: `warm pull (${nMany} files, fresh instance, workspace unchanged)`,
      impls: ['ours'],
      op: 'pull',
      prefix: () => 'many/',
      ...longRuns,
      workspace: { key: 'many', reuse: true },
      check: treeIs(many),
    },
    {
      name: 'noop-push-many',
      title: `no-op push (${nMany} files, after a pull, nothing changed)`,
      impls: ['ours'],
      op: 'push',
      // On the kept workspace this setup pull is a warm one.
      setupPull: true,
      prefix: () => 'many/',
      ...longRuns,
      workspace: { key: 'many', reuse: true },
      check: pushedNothing,
    },
    {
      name: 'delete-push',
      title: `delete push (after a pull: ${del.remove.length.toLocaleString('en')} of ${del.files.length.toLocaleString('en')} files deleted)`,
      impls: ['reference', 'ours'],
      op: 'push',
      setupPull: true,
      edits: { edit: [], add: [], remove: del.remove },
      // Deleting 3,000 of 3,200 trips the mass-deletion guard (more than
      // 50% by default: it deletes nothing, MASS_DELETE); off here.
      options: { maxDeletePercent: 100 },
      prefix: () => 'del/',
      check: (s) =>
        s.result.deletedFiles === del.remove.length && s.result.uploadedFiles === 0 && s.result.success
          ? null
          : `uploaded ${s.result.uploadedFiles}, deleted ${s.result.deletedFiles}${s.result.errors ? `: ${s.result.errors[0]}` : ''}`,
      // Put the deleted objects back, as this package made them.
      after: () => seedByPush('del/', tplDel),
    },
    ...instantScenarios(instant, longRuns),
  ]
    .filter((s) => !opts.only || opts.only.includes(s.name))
    .map((s) => (baseline ? { ...s, impls: s.impls.flatMap((i) => (i === 'ours' ? ['ours', 'baseline'] : [i])) } : s))
    // rclone and `aws s3 sync` in every scenario they can run, when installed.
    .map((s) => ({ ...s, impls: [...s.impls, ...(s.peers === false ? [] : peers.available)] }))
  if (scenarios.length === 0) throw new Error(`--only matched no scenario`)
  return scenarios
}

/**
 * Instant start (issue 25), at both sizes: the time from a cold
 * `startBackgroundPull()` until the 10 files under `.agents/skills/`
 * (`priorityPrefix`) are there, until one named file that sorts last is
 * (`ensure()`; without it, as before, when the pull brings it), and until the
 * first file of a cold `pull()` lands. Each run waits for the whole pull
 * and checks the tree. No peers: none has these operations.
 */
function instantScenarios(instant, longRuns) {
  if (!instant) return []
  return instant.flatMap(({ key, prefix, tree, last, label, long }) => {
    const common = { impls: ['ours'], peers: false, prefix: () => prefix, check: treeIs(tree), ...(long ? longRuns : {}) }
    return [
      {
        ...common,
        name: `priority-${key}`,
        title: `time to priorityDone (10 files under .agents/skills/ of ${label}, cold background pull)`,
        op: 'priority',
        options: { priorityPrefix: '.agents/skills/' },
      },
      { ...common, name: `ensure-${key}`, title: `time to ensure() one file that sorts last (${label}, during a cold background pull)`, op: 'ensure', target: last },
      { ...common, name: `first-${key}`, title: `time to the first file of a cold pull (${label})`, op: 'first' },
    ]
  })
}

/** The kept workspaces (`<key>:<impl>`) a selected scenario will reuse. */
export function reusedWorkspaces(scenarios) {
  return new Set(scenarios.filter((s) => s.workspace?.reuse).flatMap((s) => s.impls.map((i) => `${s.workspace.key}:${i}`)))
}
