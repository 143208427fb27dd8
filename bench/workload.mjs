// Deterministic benchmark workload (issue 4): an agent-like workspace.
//
// Full: 2,116 files, ~118 MB, in ~135 directories:
//   80% 0.5–16 KiB, 17% 16–128 KiB, 3% 128 KiB–1 MiB, six files of 2–8 MiB
//   (their sizes chosen so the total is ~118 MB).
// Quick: the same mix at about a tenth of the size (smoke test).
// Also: 50,000 files of 1 KiB (generateMany) and 3,200 files of 1 KiB of
// which 3,000 get deleted (generateDeleteSet).
//
// Same seed → same paths, sizes and bytes, on every machine. Contents are
// pseudo-random (AES-128-CTR keystream of the path), so nothing compresses.

import { createCipheriv, createHash } from 'node:crypto'
import { mkdirSync, writeFileSync, rmSync, unlinkSync } from 'node:fs'
import path from 'node:path'

const KiB = 1024
const MiB = 1024 * KiB

/** Small deterministic PRNG (mulberry32). */
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const TOP = ['src', 'docs', 'notes', 'data', 'scripts', 'tests', 'assets', 'research', 'memory', 'output']
const SUB = ['core', 'utils', 'api', 'models', 'views', 'drafts', 'refs', 'tmpfiles', 'cases', 'parts', 'misc', 'v2']
const SMALL_EXT = ['.md', '.ts', '.py', '.json', '.txt', '.yaml', '.js', '.csv', '.html', '.sh']
const MEDIUM_EXT = ['.json', '.csv', '.md', '.js', '.txt', '.svg']
const LARGE_EXT = ['.png', '.pdf', '.jpg', '.zip', '.parquet', '.bin']

/**
 * The file list: [{ path, size }], sorted by path. `quick` gives the small
 * variant. Sizes are exact and deterministic.
 */
export function generateWorkload({ quick = false } = {}) {
  const rand = rng(quick ? 7 : 4)
  const total = quick ? 212 : 2116
  const targetBytes = quick ? 12_000_000 : 118_000_000
  const nDirs = quick ? 20 : 135
  const nLarge = 6
  const nMedium = Math.round(total * 0.03)
  const nMid = Math.round(total * 0.17)
  const nSmall = total - nLarge - nMedium - nMid
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1))

  // Directories: a tree of depth 1–4 under a few top-level names.
  const dirs = ['']
  const seen = new Set(dirs)
  while (dirs.length < nDirs) {
    const parent = rand() < 0.35 ? TOP[int(0, TOP.length - 1)] : (dirs[int(1, dirs.length - 1)] ?? '')
    if (parent.split('/').length >= 4) continue
    const name = parent ? `${parent}/${SUB[int(0, SUB.length - 1)]}${int(0, 9)}` : TOP[int(0, TOP.length - 1)]
    if (!seen.has(name)) {
      seen.add(name)
      dirs.push(name)
    }
  }
  // Skewed placement: a few directories hold many files, as in real trees.
  const pickDir = () => dirs[Math.floor(Math.pow(rand(), 1.6) * dirs.length)]

  const files = []
  const names = new Set()
  const add = (size, exts, stem) => {
    for (;;) {
      const dir = pickDir()
      const name = `${stem}${int(0, 99999).toString(36)}${exts[int(0, exts.length - 1)]}`
      const p = dir ? `${dir}/${name}` : name
      if (names.has(p) || seen.has(p)) continue
      names.add(p)
      files.push({ path: p, size })
      return
    }
  }
  for (let i = 0; i < nSmall; i++) add(int(512, 16 * KiB), SMALL_EXT, 'f')
  for (let i = 0; i < nMid; i++) add(int(16 * KiB + 1, 128 * KiB), MEDIUM_EXT, 'm')
  for (let i = 0; i < nMedium; i++) add(int(128 * KiB + 1, MiB), MEDIUM_EXT, 'l')
  // The six large files fill the remainder up to the target, spread around
  // their mean within 2–8 MiB (quick: 1–2 MiB).
  const [lo, hi] = quick ? [MiB, 2 * MiB] : [2 * MiB, 8 * MiB]
  const used = files.reduce((n, f) => n + f.size, 0)
  const mean = Math.min(hi, Math.max(lo, (targetBytes - used) / nLarge))
  const step = Math.min(MiB, (hi - mean) / 2.5, (mean - lo) / 2.5)
  for (let i = 0; i < nLarge; i++) {
    add(Math.round(Math.min(hi, Math.max(lo, mean + (i - 2.5) * step))), LARGE_EXT, 'big')
  }
  files.sort((a, b) => (a.path < b.path ? -1 : 1))
  return files
}

const pad = (n, width) => String(n).padStart(width, '0')

/**
 * `perDir` files of 1 KiB in each of `nDirs` directories named by
 * `dirName(i)`, numbered across the set (`f00042.<ext>`): [{ path, size }].
 */
function kibFiles(nDirs, perDir, dirName, ext) {
  const files = []
  for (let d = 0; d < nDirs; d++) {
    for (let i = 0; i < perDir; i++) files.push({ path: `${dirName(d)}/f${pad(d * perDir + i, 5)}.${ext}`, size: KiB })
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : 1))
}

/**
 * The many-small-files workload: 50,000 files of exactly 1 KiB (quick:
 * 5,000), 100 in each of 500 directories (quick: 50) two levels deep, as
 * `d042/sub4/f21442.txt`. Per-file costs dominate here, not bytes.
 */
export function generateMany({ quick = false } = {}) {
  return kibFiles(quick ? 50 : 500, 100, (d) => `d${pad(Math.floor(d / 5), 3)}/sub${d % 5}`, 'txt')
}

/**
 * The delete-push workload (same in --quick): 3,200 files of 1 KiB, the
 * 3,000 under scratch/ (30 directories) to be deleted, 200 elsewhere that
 * stay. Not build/: the package ignores build/ by default (as upstream).
 * Short paths: the 3,000 travel to each child in its job (command line).
 */
export function generateDeleteSet() {
  const gone = kibFiles(30, 100, (d) => `scratch/s${pad(d, 2)}`, 'txt')
  const stay = kibFiles(2, 100, (d) => `src/m${d}`, 'ts')
  return { files: [...gone, ...stay], remove: gone.map((f) => f.path) }
}

/** Deterministic bytes for `filePath` (the same path always gives the same content). */
export function fileContent(filePath, size, salt = '') {
  const key = createHash('sha256').update(`s3ws-bench:${salt}:${filePath}`).digest()
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32))
  return cipher.update(Buffer.alloc(size))
}

/** Writes the workload under `dir`. */
export function writeWorkload(dir, files) {
  for (const f of files) {
    const full = path.join(dir, f.path)
    mkdirSync(path.dirname(full), { recursive: true })
    writeFileSync(full, fileContent(f.path, f.size))
  }
}

/** Writes a `size`-byte deterministic file at `file`, in 8 MiB pieces. */
export function writeBigFile(file, size) {
  mkdirSync(path.dirname(file), { recursive: true })
  rmSync(file, { force: true })
  const piece = 8 * MiB
  let written = 0
  let i = 0
  while (written < size) {
    const n = Math.min(piece, size - written)
    writeFileSync(file, fileContent(`big-piece-${i++}`, n), { flag: 'a' })
    written += n
  }
}

/**
 * The edit-push change set (10 edited + 5 new + 3 deleted), chosen
 * deterministically among the small and mid-sized files.
 */
export function editPlan(files) {
  const candidates = files.filter((f) => f.size <= 128 * KiB)
  const rand = rng(99)
  const chosen = new Set()
  while (chosen.size < 13) chosen.add(candidates[Math.floor(rand() * candidates.length)].path)
  const list = [...chosen]
  const bySize = new Map(files.map((f) => [f.path, f.size]))
  return {
    edit: list.slice(0, 10).map((p) => ({ path: p, size: bySize.get(p) })),
    remove: list.slice(10, 13),
    add: [0, 1, 2, 3, 4].map((i) => ({ path: `notes/new-${i}.md`, size: 2 * KiB + i * 3000 })),
  }
}

/** Applies the edit plan to the workspace `dir`. */
export function applyEdits(dir, plan) {
  for (const f of plan.edit) {
    // Same size, new bytes: only a hash can tell the file changed.
    writeFileSync(path.join(dir, f.path), fileContent(f.path, f.size, 'edited'))
  }
  for (const p of plan.remove) unlinkSync(path.join(dir, p))
  for (const f of plan.add) {
    mkdirSync(path.dirname(path.join(dir, f.path)), { recursive: true })
    writeFileSync(path.join(dir, f.path), fileContent(f.path, f.size, 'new'))
  }
}

export const summary = (files) => {
  const bytes = files.reduce((n, f) => n + f.size, 0)
  const dirs = new Set(files.map((f) => path.posix.dirname(f.path)))
  return { files: files.length, bytes, dirs: dirs.size }
}
