// The upstream README's logger example imports pino; this is the part of
// its types the example uses (a pino Logger has debug/info/warn/error that
// take a message and arguments), so the example compiles without pino.
declare module 'pino' {
  interface LogFn {
    (msg: string, ...args: unknown[]): void
    (obj: object, msg?: string, ...args: unknown[]): void
  }
  interface Logger {
    debug: LogFn
    info: LogFn
    warn: LogFn
    error: LogFn
  }
  export default function pino(options?: { level?: string }): Logger
}
