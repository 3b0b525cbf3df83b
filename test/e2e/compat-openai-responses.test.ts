/**
 * The Responses API (`client.responses.create` / `.stream` of the official `openai` client) against a
 * running `orch serve` in front of a fake Ollama: string and message input, instructions, sampling
 * parameters, the event stream in order (checked again by the client's own stream accumulator), a cut
 * answer, refused parameters, and a failure after the first event.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import OpenAI from 'openai'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 30_000
let t: TestServe
let openai: OpenAI

beforeAll(async () => {
  // A short idle timeout: a backend that stalls mid-stream fails within a test's time.
  t = await startTestServe({ tweak: (c) => (c.backend_timeouts.idle_ms = 300) })
  openai = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: 'any', maxRetries: 0 })
})
afterAll(() => t?.stop())

const fake = () => t.fakes[0]!
const lastChat = () =>
  fake()
    .calls.filter((c) => c.path === '/api/chat')
    .at(-1)?.body

describe('openai client: responses', () => {
  test(
    'string input: a completed response whose output_text (computed by the client) is the model’s text',
    async () => {
      const response = await openai.responses.create({ model: 'llama3.2', input: 'why is the sky blue' })
      expect(response.output_text).toBe('why is the sky blue')
      expect(response).toMatchObject({
        object: 'response',
        status: 'completed',
        model: 'llama3.2',
        error: null,
        incomplete_details: null,
        store: false,
        output: [
          {
            type: 'message',
            role: 'assistant',
            status: 'completed',
            content: [{ type: 'output_text', text: 'why is the sky blue', annotations: [] }],
          },
        ],
      })
      expect(response.id).toMatch(/^resp_[0-9a-f]{32}$/)
      expect(response.output[0]?.id).toMatch(/^msg_[0-9a-f]{32}$/)
      expect(Math.abs(response.created_at - Date.now() / 1000)).toBeLessThan(60)
      // The fake counts one token per word, of the prompt and of the answer.
      expect(response.usage).toMatchObject({ input_tokens: 5, output_tokens: 5, total_tokens: 10 })
      expect(lastChat().messages).toEqual([{ role: 'user', content: 'why is the sky blue' }])
    },
    T,
  )

  test(
    'message input with instructions: system first, then the items; parameters become Ollama options',
    async () => {
      const response = await openai.responses.create({
        model: 'llama3.2',
        instructions: 'answer in one word',
        input: [
          { role: 'user', content: 'first question' },
          { type: 'message', role: 'assistant', content: 'first answer' },
          {
            role: 'user',
            content: [
              { type: 'input_text', text: 'second' },
              { type: 'input_text', text: 'question' },
            ],
          },
        ],
        temperature: 0.2,
        top_p: 0.9,
        max_output_tokens: 50,
      })
      // The fake echoes the last user message.
      expect(response.output_text).toBe('second\nquestion')
      expect(response).toMatchObject({ instructions: 'answer in one word', temperature: 0.2, top_p: 0.9, max_output_tokens: 50 })
      const sent = lastChat()
      expect(sent.messages).toEqual([
        { role: 'system', content: 'answer in one word' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
        { role: 'user', content: 'second\nquestion' },
      ])
      expect(sent.options).toEqual({ temperature: 0.2, top_p: 0.9, num_predict: 50 })
    },
    T,
  )

  test(
    'stream: the event types in order, numbered; the deltas join to the final text; usage on completed',
    async () => {
      const stream = await openai.responses.create({ model: 'llama3.2', input: 'one two three four', stream: true })
      const events: OpenAI.Responses.ResponseStreamEvent[] = []
      for await (const event of stream) events.push(event)
      const types = events.map((e) => e.type)
      expect(types.slice(0, 4)).toEqual([
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.content_part.added',
      ])
      expect(types.slice(4, -4).every((type) => type === 'response.output_text.delta')).toBe(true)
      expect(types.slice(4, -4).length).toBe(4)
      expect(types.slice(-4)).toEqual([
        'response.output_text.done',
        'response.content_part.done',
        'response.output_item.done',
        'response.completed',
      ])
      expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i))
      const deltas = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : []))
      expect(deltas.join('')).toBe('one two three four')
      const done = events.find((e) => e.type === 'response.output_text.done')
      expect(done?.type === 'response.output_text.done' && done.text).toBe('one two three four')
      const completed = events.at(-1)
      if (completed?.type !== 'response.completed') throw new Error('the stream did not end with response.completed')
      expect(completed.response.status).toBe('completed')
      expect(completed.response.output[0]).toMatchObject({
        type: 'message',
        content: [{ type: 'output_text', text: 'one two three four' }],
      })
      expect(completed.response.usage).toMatchObject({ input_tokens: 4, output_tokens: 4, total_tokens: 8 })
      const created = events[0]
      expect(created?.type === 'response.created' && created.response.id).toBe(completed.response.id)
    },
    T,
  )

  test(
    'SSE on the wire: an event line and a data line per event, and no [DONE]',
    async () => {
      const res = await t.fetch('/v1/responses', {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', input: 'wire check', stream: true }),
      })
      expect(res.headers.get('content-type')).toBe('text/event-stream')
      const frames = (await res.text()).split('\n\n').filter(Boolean)
      for (const frame of frames) {
        const [event, data, ...rest] = frame.split('\n')
        expect(rest).toEqual([])
        expect(event).toStartWith('event: response.')
        expect(JSON.parse(data!.slice('data: '.length)).type).toBe(event!.slice('event: '.length))
      }
      expect(frames.at(-1)).toStartWith('event: response.completed\n')
      expect(frames).not.toContain('data: [DONE]')
    },
    T,
  )

  test(
    'stream, through the client’s own accumulator (responses.stream): it accepts the events and its final output_text is the text',
    async () => {
      const stream = openai.responses.stream({
        model: 'llama3.2',
        instructions: 'echo',
        input: [{ role: 'user', content: 'red green blue' }],
      })
      let text = ''
      stream.on('response.output_text.delta', (e) => {
        text += e.delta
      })
      const final = await stream.finalResponse()
      expect(final.output_text).toBe('red green blue')
      expect(text).toBe('red green blue')
    },
    T,
  )

  test(
    'max_output_tokens cuts the answer: status incomplete with the reason, plain and streamed',
    async () => {
      const cut = await openai.responses.create({ model: 'llama3.2', input: 'alpha beta gamma delta', max_output_tokens: 2 })
      expect(cut.output_text).toBe('alpha beta')
      expect(cut).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } })
      const stream = await openai.responses.create({ model: 'llama3.2', input: 'epsilon zeta eta', max_output_tokens: 1, stream: true })
      const types: string[] = []
      for await (const event of stream) types.push(event.type)
      expect(types.at(-1)).toBe('response.incomplete')
    },
    T,
  )

  test(
    'what needs tools or a stored response is a BadRequestError naming the parameter, code unsupported_parameter',
    async () => {
      const refused: [string, Record<string, unknown>][] = [
        ['tools', { tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: {} }, strict: false }] }],
        ['previous_response_id', { previous_response_id: 'resp_123' }],
        ['store', { store: true }],
        ['background', { background: true }],
      ]
      const before = fake().calls.length
      for (const [param, extra] of refused) {
        const error = await openai.responses.create({ model: 'llama3.2', input: 'hi', ...extra } as any).catch((e) => e)
        expect(error, param).toBeInstanceOf(OpenAI.BadRequestError)
        expect(error.error, param).toMatchObject({ type: 'invalid_request_error', param, code: 'unsupported_parameter' })
        expect(error.message).toContain(`${param}: `)
      }
      expect(fake().calls.length).toBe(before)
      // Their harmless values pass.
      const ok = await openai.responses.create({ model: 'llama3.2', input: 'fine', store: false, tools: [], tool_choice: 'auto' })
      expect(ok.output_text).toBe('fine')
    },
    T,
  )

  test(
    'a model call quieter than server.idle_timeout_s is not cut: plain and streamed',
    async () => {
      // Each token 1.2 s after the last, the headers 1.2 s after the request: longer than the 1 s idle timeout.
      const quiet = await startTestServe({ fakes: [{ latencyMs: 1200, tokenDelayMs: 1200 }], tweak: (c) => (c.server.idle_timeout_s = 1) })
      try {
        const client = new OpenAI({ baseURL: `${quiet.url}/v1`, apiKey: 'any', maxRetries: 0 })
        expect((await client.responses.create({ model: 'llama3.2', input: 'slow' })).output_text).toBe('slow')
        const final = await client.responses.stream({ model: 'llama3.2', input: 'slow words' }).finalResponse()
        expect(final.output_text).toBe('slow words')
      } finally {
        await quiet.stop()
      }
    },
    T,
  )

  test(
    'a failure after the first event is the last event, an error event the client sees (type error, the reason)',
    async () => {
      fake().set({ hang: 'after-first-chunk' })
      try {
        const stream = await openai.responses.create({ model: 'llama3.2', input: 'stalls right here', stream: true })
        const seen: string[] = []
        let failure: { message?: string; code?: string | null } | undefined
        for await (const event of stream) {
          seen.push(event.type)
          if (event.type === 'error') failure = event
        }
        expect(seen).toEqual([
          'response.created',
          'response.in_progress',
          'response.output_item.added',
          'response.content_part.added',
          'response.output_text.delta',
          'error',
        ])
        expect(failure?.message).toContain('timed out waiting for the next chunk')
        expect(failure?.code).toBe('request_timeout')
      } finally {
        fake().set({ hang: false })
      }
    },
    T,
  )
})
