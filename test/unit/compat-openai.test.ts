/**
 * The OpenAI conversions the e2e tests cannot reach through the fake: tool calls in answers (plain and
 * streamed), a cached answer streamed as one chunk, JSON schema formats and image parts; the Responses
 * API's conversions and event stream; `dimensions`; and the error vocabulary, for every orch error code.
 */
import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BackendError, type BackendErrorKind, type ChatChunk } from '../../src/backends/types.ts'
import { OrchError } from '../../src/core/errors.ts'
import { shareTokens } from '../../src/scheduler/batcher.ts'
import { errorResponse, httpError, statusOf, validate } from '../../src/server/http.ts'
import { chatStream } from '../../src/server/routes/openai.ts'
import { ChatCompletionBody, chatCompletion, chatRequest, fitDimensions } from '../../src/server/routes/openai-convert.ts'
import { OPENAI_CODES, openaiErrorType } from '../../src/server/routes/openai-errors.ts'
import {
  finishedResponse,
  ResponsesBody,
  refuseUnsupported,
  responseShell,
  responsesRequest,
  responsesStream,
} from '../../src/server/routes/openai-responses.ts'

const chunk = (content: string, done: boolean, extra: Partial<ChatChunk> = {}): ChatChunk => ({
  model: 'm',
  created_at: '2025-01-01T00:00:00Z',
  message: { role: 'assistant', content },
  done,
  ...extra,
})
const events = (text: string) =>
  text
    .split('\n\n')
    .filter(Boolean)
    .map((e) => JSON.parse(e.slice('data: '.length)))
const body = (extra: Record<string, unknown> = {}) =>
  validate(ChatCompletionBody, { model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra })

describe('OpenAI answers from canonical chunks', () => {
  test('tool calls: arguments as a JSON string, an id each, finish_reason tool_calls', () => {
    const answer = chatCompletion(
      chunk('', true, {
        message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { a: 1 } } }] },
        prompt_eval_count: 3,
        eval_count: 2,
      }),
      'm',
    )
    expect(answer.choices[0].finish_reason).toBe('tool_calls')
    expect(answer.choices[0].message.tool_calls).toEqual([
      { id: expect.stringMatching(/^call-/), type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
    ])
    expect(answer.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 })
  })

  test('a cached answer (one done chunk) streams as a delta with the role, then the finish, then usage', () => {
    const format = chatStream(body({ stream: true, stream_options: { include_usage: true } }))
    const out = events(format.item(chunk('whole answer', true, { done_reason: 'length', eval_count: 2 })))
    expect(out.map((e) => e.choices[0]?.delta ?? null)).toEqual([{ role: 'assistant', content: 'whole answer' }, {}, null])
    expect(out[1].choices[0].finish_reason).toBe('length')
    expect(out[2].usage).toEqual({ prompt_tokens: 0, completion_tokens: 2, total_tokens: 2 })
    expect(format.end()).toBe('data: [DONE]\n\n')
  })

  test('streamed tool calls carry an index; empty non-final chunks write nothing', () => {
    const format = chatStream(body({ stream: true }))
    expect(events(format.item(chunk('a', false)))[0].choices[0].delta).toEqual({ role: 'assistant', content: 'a' })
    expect(format.item(chunk('', false))).toBe('')
    const calls = events(
      format.item(
        chunk('', false, { message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'g', arguments: {} } }] } }),
      ),
    )
    expect(calls[0].choices[0].delta.tool_calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'g', arguments: '{}' } })
    expect(events(format.item(chunk('', true)))[0].choices[0].finish_reason).toBe('tool_calls')
  })
})

describe('OpenAI requests to canonical ones', () => {
  test('json_schema becomes the format; text and data-URL image parts become content and images', () => {
    const request = chatRequest(
      body({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'look' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
              { type: 'text', text: 'closely' },
            ],
          },
        ],
        response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } },
      }),
      64,
    )
    expect(request.messages).toEqual([{ role: 'user', content: 'look\nclosely', images: ['AAAA'] }])
    expect(request.format).toEqual({ type: 'object' })
    expect(request.options).toBeUndefined()
  })

  test('n other than 1 and unparsable tool arguments are 400s naming the field', () => {
    expect(() => body({ n: 2 })).toThrow('n: only n: 1 is supported')
    const bad = body({
      messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'x', function: { name: 'f', arguments: '{nope' } }] }],
    })
    expect(() => chatRequest(bad, 64)).toThrow('messages.0.tool_calls.0.function.arguments')
    const deep = body({
      messages: [
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'x', function: { name: 'f', arguments: `${'['.repeat(65)}${']'.repeat(65)}` } }],
        },
      ],
    })
    expect(() => chatRequest(deep, 64)).toThrow('nested deeper than 64 levels (server.max_json_depth)')
    expect(() => chatRequest(deep, 65)).not.toThrow()
  })
})

/** Every `'E_...'` literal in src/, and the codes made from a template (backend kinds, httpError's default). */
function codesInSource(): Set<string> {
  const codes = new Set<string>()
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (path.endsWith('.ts')) for (const m of readFileSync(path, 'utf8').matchAll(/'(E_[A-Z_]+)'/g)) codes.add(m[1] as string)
    }
  }
  walk(join(import.meta.dir, '../../src'))
  const kinds: BackendErrorKind[] = ['connect', 'timeout', 'http', 'protocol', 'aborted']
  for (const kind of kinds) codes.add(new BackendError('x', { kind, backend: 'b' }).code)
  // httpError without a code: the 405 of a known path, the 499 of a client that left.
  codes.add('E_HTTP_405')
  codes.add('E_HTTP_499')
  return codes
}

/** OpenAI's own words: the types of its error classes, and the codes its API answers with. */
const OPENAI_TYPES = ['invalid_request_error', 'authentication_error', 'permission_error', 'rate_limit_error', 'server_error']
const OPENAI_CODE_WORDS = [
  'invalid_value',
  'missing_required_parameter',
  'unsupported_parameter',
  'request_timeout',
  'invalid_api_key',
  'model_not_found',
  'rate_limit_exceeded',
  'server_overloaded',
  'server_error',
  'context_length_exceeded',
]

const openaiBody = async (error: unknown) => {
  const response = errorResponse(error, 'openai')
  return { status: response.status, error: ((await response.json()) as { error: Record<string, unknown> }).error }
}

describe('OpenAI error vocabulary', () => {
  test('the table names every orch error code in src/, and nothing else', () => {
    const inSource = codesInSource()
    expect([...inSource].filter((c) => !(c in OPENAI_CODES)).sort()).toEqual([])
    expect(Object.keys(OPENAI_CODES).filter((c) => !inSource.has(c))).toEqual([])
  })

  test('every code renders as {message, type, param, code, orch_code} in OpenAI words, for the statuses it is sent with', async () => {
    for (const [orchCode, openaiCode] of Object.entries(OPENAI_CODES)) {
      for (const status of [400, 401, 403, 404, 408, 413, 429, 499, 500, 502, 503, 504]) {
        const { error } = await openaiBody(new OrchError('why', { code: orchCode, details: { status } }))
        expect(Object.keys(error).sort(), orchCode).toEqual(['code', 'message', 'orch_code', 'param', 'type'])
        expect(error, `${orchCode} ${status}`).toEqual({
          message: 'why',
          type: openaiErrorType(status),
          param: null,
          code: openaiCode,
          orch_code: orchCode,
        })
        expect(OPENAI_TYPES).toContain(error.type as string)
        if (error.code !== null) expect(OPENAI_CODE_WORDS).toContain(error.code as string)
      }
    }
  })

  test('types follow the status as OpenAI’s error classes do', () => {
    expect([400, 401, 403, 404, 405, 408, 413, 429, 499, 500, 502, 503, 504].map(openaiErrorType)).toEqual([
      'invalid_request_error',
      'authentication_error',
      'permission_error',
      'invalid_request_error',
      'invalid_request_error',
      'invalid_request_error',
      'invalid_request_error',
      'rate_limit_error',
      'invalid_request_error',
      'server_error',
      'server_error',
      'server_error',
      'server_error',
    ])
  })

  test('the conditions OpenAI clients look for get OpenAI’s codes', async () => {
    const cases: [OrchError, number, string, string | null][] = [
      [
        new OrchError('no such model', { code: 'E_MODEL_NOT_FOUND', details: { status: 404 } }),
        404,
        'invalid_request_error',
        'model_not_found',
      ],
      [httpError(401, 'the bearer token is wrong', 'E_UNAUTHORIZED'), 401, 'authentication_error', 'invalid_api_key'],
      [
        new OrchError('full', { code: 'E_QUEUE_FULL', details: { status: 429, retry_after_s: 5 } }),
        429,
        'rate_limit_error',
        'rate_limit_exceeded',
      ],
      [new OrchError('cannot drain', { code: 'E_OVERLOADED', details: { status: 503 } }), 503, 'server_error', 'server_overloaded'],
      [
        httpError(400, 'messages: is required, got nothing', 'E_VALIDATION', { field: 'messages' }),
        400,
        'invalid_request_error',
        'missing_required_parameter',
      ],
      [
        httpError(400, 'temperature: expected a number', 'E_VALIDATION', { field: 'temperature' }),
        400,
        'invalid_request_error',
        'invalid_value',
      ],
      [httpError(400, 'tools: not supported', 'E_UNSUPPORTED', { field: 'tools' }), 400, 'invalid_request_error', 'unsupported_parameter'],
      [httpError(413, 'too large', 'E_BODY_TOO_LARGE'), 413, 'invalid_request_error', null],
    ]
    for (const [error, status, type, code] of cases) {
      const out = await openaiBody(error)
      expect(out.status).toBe(status)
      expect(out.error).toMatchObject({ type, code, orch_code: error.code })
    }
    expect((await openaiBody(httpError(400, 'x: bad', 'E_VALIDATION', { field: 'x' }))).error.param).toBe('x')
    // Not an OrchError: a fault of orch's own, its message kept from the client.
    expect((await openaiBody(new TypeError('secret path /etc'))).error).toEqual({
      message: 'internal error (the orch serve log has the details)',
      type: 'server_error',
      param: null,
      code: 'server_error',
      orch_code: 'E_INTERNAL',
    })
  })

  test('a backend’s refusal: its own string code first, then its status and message', async () => {
    const http = (status: number, message: string, details?: Record<string, unknown>) =>
      new BackendError(`vllm: HTTP ${status}: ${message}`, { kind: 'http', backend: 'vllm', status, ...(details ? { details } : {}) })
    const code = async (e: BackendError) => (await openaiBody(e)).error.code
    expect(await code(http(400, 'too long', { upstream_code: 'context_length_exceeded' }))).toBe('context_length_exceeded')
    expect(await code(http(400, 'the input length exceeds the context length'))).toBe('context_length_exceeded')
    expect(await code(http(404, 'model "x" not found, try pulling it first'))).toBe('model_not_found')
    expect(await code(http(429, 'slow down'))).toBe('rate_limit_exceeded')
    expect(await code(http(500, 'out of memory'))).toBe('server_error')
    expect(statusOf(http(500, 'out of memory'))).toBe(502)
    expect(await code(http(400, 'bad'))).toBeNull()
    expect((await openaiBody(new BackendError('vllm: timed out', { kind: 'timeout', backend: 'vllm' }))).error).toMatchObject({
      type: 'server_error',
      code: 'request_timeout',
      orch_code: 'E_BACKEND_TIMEOUT',
    })
  })
})

describe('embeddings: dimensions and shared token counts', () => {
  test('longer vectors are cut and re-normalised; equal ones pass as they are; shorter ones are a 400 naming dimensions', () => {
    const [cut] = fitDimensions([[0.6, 0.8, 0.0, 0.0]], 1, 'm')
    expect(cut).toEqual([1])
    const [two] = fitDimensions([[0.5, 0.5, 0.5, 0.5]], 2, 'm')
    expect(two?.[0]).toBeCloseTo(Math.SQRT1_2, 12)
    expect(Math.hypot(...(two ?? []))).toBeCloseTo(1, 12)
    const same = [0.1, 0.2]
    expect(fitDimensions([same], 2, 'm')[0]).toBe(same)
    expect(() => fitDimensions([[1, 0]], 3, 'nomic')).toThrow('dimensions: nomic has 2 dimensions, fewer than the 3 asked for')
  })

  test('a shared call’s token count is split by input length and adds up; alone, a caller gets all of it', () => {
    expect(shareTokens(7, [{ inputs: ['one two'] }])).toEqual([7])
    expect(shareTokens(10, [{ inputs: ['aaaa'] }, { inputs: ['a', 'a'] }, { inputs: ['aaaa'] }])).toEqual([4, 2, 4])
    const shares = shareTokens(10, [{ inputs: ['a'] }, { inputs: ['a'] }, { inputs: ['a'] }])
    expect(shares.reduce((a, b) => a + b, 0)).toBe(10)
    expect(shares.sort()).toEqual([3, 3, 4])
    expect(shareTokens(3, [{ inputs: [''] }, { inputs: [''] }]).reduce((a, b) => a + b, 0)).toBe(3)
  })
})

const responses = (extra: Record<string, unknown>) => validate(ResponsesBody, { model: 'm', input: 'hi', ...extra })
const sse = (text: string) =>
  text
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => {
      const [head, data] = frame.split('\n')
      return { event: head?.slice('event: '.length), data: JSON.parse(data?.slice('data: '.length) ?? '{}') }
    })

describe('Responses API conversions', () => {
  test('instructions lead as the system message; items keep their order, developer is system, parts join, data-URL images', () => {
    const request = responsesRequest(
      responses({
        instructions: 'be brief',
        input: [
          { role: 'developer', content: 'rules' },
          {
            type: 'message',
            role: 'user',
            content: [
              { type: 'input_text', text: 'look' },
              { type: 'input_image', image_url: 'data:image/png;base64,QUJD' },
            ],
          },
          { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'seen', annotations: [] }] },
          {
            role: 'user',
            content: [
              { type: 'input_text', text: 'and' },
              { type: 'input_text', text: 'now?' },
            ],
          },
        ],
        temperature: 0.3,
        top_p: 0.8,
        max_output_tokens: 5,
        text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object' }, strict: true } },
      }),
    )
    expect(request).toEqual({
      model: 'm',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'system', content: 'rules' },
        { role: 'user', content: 'look', images: ['QUJD'] },
        { role: 'assistant', content: 'seen' },
        { role: 'user', content: 'and\nnow?' },
      ],
      options: { temperature: 0.3, top_p: 0.8, num_predict: 5 },
      format: { type: 'object' },
    })
    expect(responsesRequest(responses({ text: { format: { type: 'json_object' } } })).format).toBe('json')
    expect(responsesRequest(responses({}))).toEqual({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
  })

  test('bad items are 400s naming the field: other item types, image URLs that are not data:, no input', () => {
    const call = responses({ input: [{ type: 'function_call_output', call_id: 'c', output: 'x' }] })
    expect(() => responsesRequest(call)).toThrow('input.0.type: only message items are supported')
    const remote = responses({ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }] })
    expect(() => responsesRequest(remote)).toThrow('input.0.content.0.image_url: only data: URLs')
    expect(() => validate(ResponsesBody, { model: 'm' })).toThrow('input: is required')
    expect(() => responses({ max_output_tokens: 0 })).toThrow('max_output_tokens')
  })

  test('what needs tools or a stored response is refused naming the parameter; its harmless defaults pass', () => {
    const refused: [string, unknown][] = [
      ['tools', [{ type: 'function', name: 'f', parameters: {} }]],
      ['tool_choice', 'required'],
      ['previous_response_id', 'resp_1'],
      ['conversation', 'conv_1'],
      ['store', true],
      ['background', true],
      ['prompt', { id: 'pmpt_1' }],
      ['include', ['message.output_text.logprobs']],
      ['reasoning', { effort: 'high' }],
      ['top_logprobs', 3],
    ]
    for (const [field, value] of refused) {
      let thrown: unknown
      try {
        refuseUnsupported(responses({ [field]: value }))
      } catch (error) {
        thrown = error
      }
      expect(thrown, field).toBeInstanceOf(OrchError)
      expect((thrown as OrchError).code).toBe('E_UNSUPPORTED')
      expect((thrown as OrchError).details?.field).toBe(field)
      expect(statusOf(thrown)).toBe(400)
      expect((thrown as Error).message).toStartWith(`${field}: `)
    }
    const defaults = { tools: [], tool_choice: 'auto', store: false, background: false, reasoning: null, include: [], top_logprobs: 0 }
    expect(() => refuseUnsupported(responses(defaults))).not.toThrow()
  })

  test('a cached answer (one done chunk) streams the whole event sequence, numbered, ending with completed', () => {
    const shell = responseShell(responses({ instructions: 'sys' }))
    const format = responsesStream(shell)
    const out = sse(format.item(chunk('whole answer', true, { prompt_eval_count: 4, eval_count: 2 })))
    expect(out.map((e) => e.event)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ])
    expect(out.every((e) => e.data.type === e.event)).toBe(true)
    expect(out.map((e) => e.data.sequence_number)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
    expect(out[0]?.data.response).toMatchObject({
      id: shell.id,
      object: 'response',
      status: 'in_progress',
      output: [],
      instructions: 'sys',
    })
    const completed = out.at(-1)?.data.response
    expect(completed).toMatchObject({
      id: shell.id,
      status: 'completed',
      output: [
        {
          type: 'message',
          role: 'assistant',
          status: 'completed',
          content: [{ type: 'output_text', text: 'whole answer', annotations: [] }],
        },
      ],
      usage: { input_tokens: 4, output_tokens: 2, total_tokens: 6 },
    })
    expect(completed.output[0].id).toBe(out[2]?.data.item.id)
    expect(out[4]?.data).toMatchObject({ delta: 'whole answer', item_id: completed.output[0].id, output_index: 0, content_index: 0 })
    expect(format.end()).toBe('')
  })

  test('cut by max_output_tokens: incomplete, with the reason; a late failure is an error event', () => {
    const shell = responseShell(responses({ max_output_tokens: 1 }))
    const format = responsesStream(shell)
    expect(sse(format.item(chunk('a', false))).map((e) => e.event)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
    ])
    expect(format.item(chunk('', false))).toBe('')
    const last = sse(format.item(chunk('', true, { done_reason: 'length' }))).at(-1)
    expect(last?.event).toBe('response.incomplete')
    expect(last?.data.response).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } })
    const failed = sse(
      format.fail(JSON.stringify({ error: { message: 'timed out', type: 'server_error', param: null, code: 'request_timeout' } })),
    )
    expect(failed).toEqual([
      { event: 'error', data: { type: 'error', code: 'request_timeout', message: 'timed out', param: null, sequence_number: 9 } },
    ])
    const plain = finishedResponse(shell, chunk('x', true, { eval_count: 1 }), 'x')
    expect(plain).toMatchObject({
      status: 'completed',
      incomplete_details: null,
      usage: { input_tokens: 0, output_tokens: 1, total_tokens: 1 },
    })
  })
})
