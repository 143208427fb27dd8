// @ts-check
'use strict'

// The CLI's progress: one line redrawn in place on a terminal (Node's own
// tty cursor calls), else a plain line every few seconds.

const MiB = 1024 * 1024
/** Without a terminal: at most one line this often. */
const PLAIN_INTERVAL_MS = 5000
/** On a terminal: at most one redraw this often. */
const TTY_INTERVAL_MS = 100

/** @param {number} n */
const mib = (n) => (n / MiB).toFixed(1)

/** @param {number} seconds */
function duration(seconds) {
  if (!Number.isFinite(seconds)) return '?'
  if (seconds < 60) return `${Math.ceil(seconds)}s`
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`
}

/**
 * @param {import('../index').SyncProgress} p
 * @param {number} startedAt when the phase started (ms)
 */
function describe(p, startedAt) {
  const seconds = Math.max((Date.now() - startedAt) / 1000, 0.001)
  const rate = p.bytes / seconds
  const parts = [p.phase.padEnd(8), `${String(p.percentage).padStart(3)}%`, `${p.current}/${p.total} files`]
  if (p.totalBytes > 0) {
    parts.push(`${mib(p.bytes)}/${mib(p.totalBytes)} MiB`, `${mib(rate)} MiB/s`)
    if (p.bytes < p.totalBytes && rate > 0) parts.push(`ETA ${duration((p.totalBytes - p.bytes) / rate)}`)
  }
  return parts.join('  ')
}

/**
 * A progress listener writing to `stream` (stderr), and `done()` to end the line.
 * @param {NodeJS.WriteStream} stream
 */
function progressReporter(stream) {
  const tty = Boolean(stream.isTTY)
  let phase = ''
  let startedAt = Date.now()
  let last = 0
  let drawn = false
  /** @param {string} line */
  const draw = (line) => {
    if (tty) {
      stream.cursorTo(0)
      stream.write(line)
      stream.clearLine(1)
      drawn = true
    } else {
      stream.write(`${line}\n`)
    }
  }
  return {
    /** @param {import('../index').SyncProgress} p */
    update(p) {
      if (p.phase !== phase) {
        if (drawn) stream.write('\n')
        drawn = false
        phase = p.phase
        startedAt = Date.now()
        last = 0
      }
      const now = Date.now()
      const final = p.current === p.total
      if (!final && now - last < (tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS)) return
      last = now
      draw(describe(p, startedAt))
    },
    done() {
      if (drawn) stream.write('\n')
      drawn = false
    },
  }
}

module.exports = { progressReporter }
