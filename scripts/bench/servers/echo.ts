/** Baseline for scripts/bench/serve.ts: a bare Bun.serve handler that reads the body and answers JSON. */
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(request) {
    await request.text()
    return new Response('{"id":"x","state":"queued","created":true}', { status: 202, headers: { 'content-type': 'application/json' } })
  },
})
console.log(JSON.stringify({ url: `http://127.0.0.1:${server.port}` }))
