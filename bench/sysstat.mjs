// CPU accounting from /proc (Linux). Elsewhere these return NaN and the
// report shows no CPU figures.

import { readFileSync } from 'node:fs'

const USER_HZ_MS = 10 // /proc counts in USER_HZ = 100 ticks per second

/** CPU time (ms, user + system) used so far by process `pid`. */
export function cpuMsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * USER_HZ_MS
  } catch {
    return NaN
  }
}

/**
 * CPU time (ms) processes used on the whole machine so far (all cores):
 * user + nice + system. Interrupt time is left out: loopback networking runs
 * in softirq context and is charged to no process.
 */
export function machineBusyMs() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    return (f[0] + f[1] + f[2]) * USER_HZ_MS
  } catch {
    return NaN
  }
}
