/**
 * The Ollama test double (test/helpers/fake-ollama.ts) in its own process, for the kill -9 loop, plus a
 * control port that reports every generate call it received, so the loop can count how often each task
 * (each has a unique prompt) reached the model server, and which calls were in flight when serve died.
 *
 *   bun scripts/chaos/model-double.ts [--token-delay-ms 20] [--tokens 8] [--latency-ms 0]
 *   → one line on stdout: {"url": "http://127.0.0.1:P", "control": "http://127.0.0.1:Q", "pid": N, "reply": "w0 w1 ..."}
 *
 * GET {control}/calls?after=ID → {"now": ms, "in_flight": n, "calls": [{id, prompt, started_at, ended_at,
 * status, aborted}]}: generate calls with an id above ID, oldest first; times are this process's
 * performance.now() (`now` is the same clock). The process exits on SIGTERM/SIGINT, or when its stdin
 * closes (the loop is gone, even by SIGKILL), killing first the serve processes the loop named on stdin.
 */
import { parseArgs } from 'node:util'
import { startFakeOllama } from '../../test/helpers/fake-ollama.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    'token-delay-ms': { type: 'string', default: '20' },
    tokens: { type: 'string', default: '8' },
    'latency-ms': { type: 'string', default: '0' },
  },
})

const tokens = Math.max(1, Number(values.tokens))
// Every answer is the same `tokens` words, so each call streams for about tokens × token-delay-ms.
const reply = Array.from({ length: tokens }, (_, i) => `w${i}`).join(' ')

const fake = await startFakeOllama({
  models: ['llama3.2'],
  tokenDelayMs: Number(values['token-delay-ms']),
  latencyMs: Number(values['latency-ms']),
  reply: () => reply,
})

const control = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch(request) {
    const url = new URL(request.url)
    if (url.pathname !== '/calls') return new Response('not found', { status: 404 })
    const after = Number(url.searchParams.get('after') ?? 0)
    const calls = fake.calls
      .filter((c) => c.path === '/api/generate' && c.id > after)
      .map((c) => ({
        id: c.id,
        prompt: typeof c.body?.prompt === 'string' ? c.body.prompt : null,
        started_at: c.startedAt,
        ended_at: c.endedAt ?? null,
        status: c.status ?? null,
        aborted: c.aborted,
      }))
    return Response.json({ now: performance.now(), in_flight: fake.stats.inFlight, calls })
  },
})

let stopping = false
async function stop(): Promise<never> {
  if (!stopping) {
    stopping = true
    control.stop(true)
    await fake.stop()
  }
  process.exit(0)
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
// The loop holds our stdin open and names the serve processes it starts ("serve PID") and reaps
// ("gone PID"). When stdin ends (the loop exited, crashed or was SIGKILLed) we kill the ones still named
// and exit: no orphaned serve or double even when the loop itself dies.
const serves = new Set<number>()
;(async () => {
  const decoder = new TextDecoder()
  let buffered = ''
  for await (const chunk of Bun.stdin.stream()) {
    buffered += decoder.decode(chunk, { stream: true })
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) {
      const [word, pid] = line.trim().split(' ')
      if (word === 'serve') serves.add(Number(pid))
      if (word === 'gone') serves.delete(Number(pid))
    }
  }
  for (const pid of serves) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  await stop()
})()

console.log(JSON.stringify({ url: fake.url, control: `http://127.0.0.1:${control.port}`, pid: process.pid, reply }))
