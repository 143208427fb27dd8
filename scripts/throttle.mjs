// Throttling as S3 does it, for the test proxy and the benchmark's: requests
// pass at a fixed rate (a token bucket holding 50 ms of them) and the rest
// are answered 503 SlowDown at once.

export const SLOW_DOWN_XML = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'

/** `take()` is true for a request that may pass now; `stats` counts both answers. */
export function tokenBucket(rate) {
  const burst = Math.max(1, rate / 20)
  let tokens = burst
  let last = performance.now()
  const stats = { passed: 0, slowDown: 0 }
  return {
    stats,
    take() {
      const now = performance.now()
      tokens = Math.min(burst, tokens + ((now - last) * rate) / 1000)
      last = now
      if (tokens < 1) {
        stats.slowDown++
        return false
      }
      tokens -= 1
      stats.passed++
      return true
    },
  }
}
