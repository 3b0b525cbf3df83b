/**
 * The OpenAI conversions the e2e tests cannot reach through the fake: tool calls in answers (plain and
 * streamed), a cached answer streamed as one chunk, JSON schema formats and image parts.
 */
import { describe, expect, test } from 'bun:test'
import type { ChatChunk } from '../../src/backends/types.ts'
import { validate } from '../../src/server/http.ts'
import { chatStream } from '../../src/server/routes/openai.ts'
import { ChatCompletionBody, chatCompletion, chatRequest } from '../../src/server/routes/openai-convert.ts'

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
